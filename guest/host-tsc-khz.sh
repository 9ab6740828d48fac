#!/bin/sh
# Print the host's TSC frequency in kHz, for the guest's tsc_early_khz= parameter.
# Under TCG the guest's RDTSC reads the host's TSC, and a microvm guest hangs in timer setup
# unless told its frequency (no PIT/HPET calibration there). With KVM it is not needed.
# Sources, first that answers:
#   1. /sys/devices/system/cpu/cpu0/tsc_freq_khz (kernels/patches that export it)
#   2. the kernel log: "tsc: Refined TSC clocksource calibration: X MHz", else
#      "tsc: Detected X MHz processor" (dmesg; needs CAP_SYSLOG when dmesg_restrict=1)
#   3. "cpu MHz" of the first CPU in /proc/cpuinfo, if the TSC is constant (constant_tsc):
#      on a VM without APERF/MPERF that is the TSC frequency; on bare metal it may be the
#      current clock, so it is the last resort.
set -eu

f=/sys/devices/system/cpu/cpu0/tsc_freq_khz
if [ -r "$f" ]; then
	v=$(cat "$f")
	case $v in '' | *[!0-9]*) ;; *) echo "$v"; exit 0 ;; esac
fi

mhz_to_khz() { awk -v m="$1" 'BEGIN { printf "%d\n", m * 1000 + 0.5 }'; }

log=$(dmesg 2>/dev/null || true)
m=$(printf '%s\n' "$log" | sed -n 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' | tail -n 1)
[ -n "$m" ] || m=$(printf '%s\n' "$log" | sed -n 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | tail -n 1)
if [ -n "$m" ]; then
	mhz_to_khz "$m"
	exit 0
fi

if grep -q -m1 '^flags.* constant_tsc' /proc/cpuinfo; then
	m=$(sed -n 's/^cpu MHz[[:space:]]*:[[:space:]]*\([0-9.]*\).*/\1/p' /proc/cpuinfo | head -n 1)
	if [ -n "$m" ]; then
		mhz_to_khz "$m"
		exit 0
	fi
fi
echo "host-tsc-khz.sh: cannot tell the host's TSC frequency" >&2
exit 1
