// Package atrest holds what encrypting the relay log at rest rests on:
// keys as MariaDB's file_key_management plugin reads them (plain or
// `openssl enc` encrypted key files), and MariaDB's own binlog encryption
// scheme (the Start_encryption event and each later event encrypted in
// place, at the same length, with an IV from a nonce and the offset).
//
// Nothing here touches the relay log yet: the writer and the readers in
// binlog/ will use Keys and EventCipher from their file layer. See
// docs/encryption-at-rest.md for the design.
package atrest
