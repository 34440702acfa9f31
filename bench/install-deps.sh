#!/bin/sh
# Installs the third-party daemons bench/compare.py measures textback against:
# smstools3 (Debian package smstools, smsd), gammu-smsd (+ gammu-smsd-inject), and
# inotify-tools (inotifywait, which smstools3's "notifier = yes" tuning runs).
# Non-interactive; a no-op when they are already there. Needs root (or sudo).
set -eu
need=""
command -v smsd >/dev/null 2>&1 || need="$need smstools"
command -v gammu-smsd >/dev/null 2>&1 || need="$need gammu-smsd"
command -v gammu-smsd-inject >/dev/null 2>&1 || need="$need gammu-smsd"
command -v inotifywait >/dev/null 2>&1 || need="$need inotify-tools"
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d may refuse to start the packaged services (containers): that is fine, the
# bench runs its own foreground instances with their own configs.
$SUDO apt-get install -y -qq --no-install-recommends $need
