// Package systemd holds replink's systemd unit (replink.service) and its
// sysusers.d entry; its test checks the unit's hardening. make deploy-check
// also runs systemd-analyze verify on the unit.
package systemd
