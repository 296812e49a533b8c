// Package container checks replink's container image definition: the
// Dockerfile and .dockerignore at the top of the repository, and the
// docker-compose.yml that builds from them. No Docker engine runs where
// the tests run, so its test reads the files.
package container
