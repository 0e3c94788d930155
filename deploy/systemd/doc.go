// Package systemd holds MeshGuard's systemd unit (meshguard.service) and the
// example settings file it reads (meshguard.env), for running serve on a VM
// (docs/install.md). Its test checks the unit's hardening directives, runs
// systemd-analyze verify on it where installed, and checks every key of the
// settings file is one serve reads, with values serve accepts.
package systemd
