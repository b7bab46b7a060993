// Package tmpfstest gives tests a small file system of their own that
// they can fill up, to see what a program does when the disk is full: a
// tmpfs mounted for the test (Linux, as root).
//
// Mounting needs privileges. Where it is not permitted the test is
// skipped, except under CI=true: CI runs as root, so a skip there would
// hide the test.
package tmpfstest
