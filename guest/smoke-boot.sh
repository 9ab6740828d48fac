#!/bin/bash
# Boot the guest images under QEMU and prove they work, then time cold boots.
#
#   guest/smoke-boot.sh [--runs N] [--image FILE] [--initrd FILE] [--kernel FILE] [--no-checks] [--no-timing]
#   SMOKE_PARAMS="..." adds kernel parameters to every boot (e.g. cc.debug=1 to see each
#   step of /init); STANDIN_IMG=FILE times another image instead of the stand-in's.
#
# The hypervisor command line is data/hypervisor.args.in expanded by hand with sed, the way
# the runtime would: {{...}} build-time names, then the @TAG@s (TCG, -cpu max, 256 MiB).
# The kernel command line is the "parameters" of data/vm.json.in plus tsc_early_khz=<host TSC
# kHz> (guest/host-tsc-khz.sh: microvm under TCG hangs in timer setup without it).
#
# 1. Checks boot (image: --image, else build/guest/rootfs.erofs if present, else the stand-in
#    image): /init runs cc.init="/bin/sh -c '<mount the 9p share on /mnt>; exec sh
#    /mnt/checks.sh'", the script then prints the guest's uname -r, the agent's virtio-serial
#    port, reads a file from the host directory and writes one back, runs crun --version and
#    `crun run` on a busybox bundle in the share, and powers off. The host checks every answer.
# 2. Timing boots (N, default 3): the stand-in agent (guest/standin-agent.ts, compiled with
#    bun build --compile into its own image under build/guest/smoke/) runs as PID 1 through
#    the default path (switch_root ... /usr/bin/cc-oci-runtime __agent), prints AGENT-READY
#    and powers off. Reported: host time from starting QEMU to the "cc-init: start" line, to
#    AGENT-READY, and to QEMU's exit; medians.
#
# Every QEMU runs under `timeout` and is killed on exit or interrupt: none is left behind.
set -euo pipefail

cd "$(dirname "$0")/.."
TOP=$(pwd)

RUNS=3
IMAGE=
INITRD=build/guest/initrd.img
KERNEL=build/guest/vmlinux
DO_CHECKS=1
DO_TIMING=1
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--image) IMAGE=$2; shift 2 ;;
	--initrd) INITRD=$2; shift 2 ;;
	--kernel) KERNEL=$2; shift 2 ;;
	--no-checks) DO_CHECKS=; shift ;;
	--no-timing) DO_TIMING=; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "smoke-boot.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

QEMU=${QEMU:-/usr/bin/qemu-system-x86_64}
ARGS_IN=${ARGS_IN:-data/hypervisor.args.in}
VM_JSON_IN=${VM_JSON_IN:-data/vm.json.in}
MEMORY=${MEMORY:-256}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-90}
BUN=${BUN:-node_modules/.bin/bun}
SMOKE=build/guest/smoke
mkdir -p "$SMOKE"

for f in "$KERNEL" "$INITRD" "$ARGS_IN" "$VM_JSON_IN" "$QEMU"; do
	[ -e "$f" ] || { echo "smoke-boot.sh: $f missing (make guest?)" >&2; exit 1; }
done

TSC_KHZ=$(guest/host-tsc-khz.sh)
BASE_PARAMS=$(sed -n 's/^ *"parameters": *"\(.*\)",\{0,1\} *$/\1/p' "$VM_JSON_IN")
[ -n "$BASE_PARAMS" ] || { echo "smoke-boot.sh: no kernel parameters in $VM_JSON_IN" >&2; exit 1; }
BASE_PARAMS="$BASE_PARAMS tsc_early_khz=$TSC_KHZ${SMOKE_PARAMS:+ $SMOKE_PARAMS}"

# Sockets want short paths (108 bytes): keep the per-boot runtime files in /tmp.
RUNDIR=$(mktemp -d /tmp/cc-smoke.XXXXXX)
QPID=
READER=
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill -TERM "$QPID" 2>/dev/null || true
		sleep 0.5
		kill -KILL "$QPID" 2>/dev/null || true
	fi
	if [ -n "$READER" ]; then kill "$READER" 2>/dev/null || true; fi
	rm -rf "$RUNDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sed_escape() { printf '%s' "$1" | sed -e 's/[&|\\]/\\&/g'; }

# expand_args DIR IMAGE KERNEL_PARAMS -> fills the ARGV array (hypervisor first)
expand_args() {
	local dir=$1 image=$2 params=$3 line
	local -a s=(
		-e "s|{{QEMU_PATH}}|$(sed_escape "$QEMU")|g"
		-e "s|{{KERNEL}}|$(sed_escape "$TOP/$KERNEL")|g"
		-e "s|{{INITRD}}|$(sed_escape "$TOP/$INITRD")|g"
		-e "s|{{IMAGE}}|$(sed_escape "$TOP/$image")|g"
		-e "s|@KERNEL@|$(sed_escape "$TOP/$KERNEL")|g"
		-e "s|@INITRD@|$(sed_escape "$TOP/$INITRD")|g"
		-e "s|@IMAGE@|$(sed_escape "$TOP/$image")|g"
		-e "s|@SIZE@|$(wc -c <"$image")|g"
		-e "s|@KERNEL_PARAMS@|$(sed_escape "$params")|g"
		-e "s|@NAME@|cc-smoke-$$|g"
		-e "s|@UUID@|$(cat /proc/sys/kernel/random/uuid)|g"
		# QEMU binds the sockets itself here (the runtime hands it bound ones: fd=).
		-e "s|fd=@COMMS_FD@|path=$dir/qmp.sock|g"
		-e "s|fd=@AGENT_FD@|path=$dir/agent.sock|g"
		-e "s|fd=@PROCESS_FD@|path=$dir/process.sock|g"
		-e "s|@VCPUS@|1|g"
		-e "s|@SHARE_SECURITY@|passthrough|g"
		-e "s|@COMMS_SOCKET@|$dir/qmp.sock|g"
		-e "s|@AGENT_SOCKET@|$dir/agent.sock|g"
		-e "s|@PROCESS_SOCKET@|$dir/process.sock|g"
		-e "s|@CONSOLE_DEVICE@|file,id=console,path=$dir/console|g"
		-e "s|@WORKLOAD_DIR@|$dir/workload|g"
		-e "s|@ACCEL@|tcg|g"
		-e "s|@CPU@|max|g"
		-e "s|@MEMORY@|$MEMORY|g"
	)
	sed "${s[@]}" "$ARGS_IN" >"$dir/hypervisor.args"
	ARGV=()
	while IFS= read -r line; do
		line="${line#"${line%%[![:space:]]*}"}"
		line="${line%"${line##*[![:space:]]}"}"
		case $line in '' | '#'*) continue ;; esac
		if [[ $line == *@[A-Z]*@* ]]; then
			echo "smoke-boot.sh: unexpanded tag in: $line" >&2
			exit 1
		fi
		ARGV+=("$line")
	done <"$dir/hypervisor.args"
}

# boot NAME IMAGE EXTRA_PARAMS -> $SMOKE/NAME.log: "<seconds since QEMU start> <console line>"
# Sets BOOT_RC (QEMU's exit status, 124 on timeout) and BOOT_EXIT (seconds to QEMU's exit).
boot() {
	local name=$1 image=$2 extra=$3 dir="$RUNDIR/$1" start end
	mkdir -p "$dir/workload"
	[ -z "${WORKLOAD_SETUP:-}" ] || "$WORKLOAD_SETUP" "$dir/workload"
	expand_args "$dir" "$image" "$BASE_PARAMS${extra:+ $extra}"
	printf '%q ' "${ARGV[@]}" >"$SMOKE/$name.cmd"
	echo >>"$SMOKE/$name.cmd"
	mkfifo "$dir/console"
	# The reader stamps each console line with the host clock as it arrives.
	(while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "${l%$'\r'}"; done <"$dir/console" >"$dir/stamped") &
	READER=$!
	start=$EPOCHREALTIME
	timeout -k 3 "$BOOT_TIMEOUT" "${ARGV[@]}" </dev/null >"$SMOKE/$name.qemu.log" 2>&1 &
	QPID=$!
	BOOT_RC=0
	wait "$QPID" || BOOT_RC=$?
	end=$EPOCHREALTIME
	QPID=
	# The reader ends at EOF when QEMU closes the console; if QEMU died before opening it,
	# the reader is still blocked in open(): stop it.
	for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$READER" 2>/dev/null || break; sleep 0.1; done
	kill "$READER" 2>/dev/null || true
	wait "$READER" 2>/dev/null || true
	READER=
	touch "$dir/stamped"
	awk -v s="$start" '{ t = $1 - s; $1 = ""; printf "%7.3f%s\n", t, $0 }' "$dir/stamped" >"$SMOKE/$name.log"
	BOOT_EXIT=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
}

# first_time LOG REGEX -> seconds of the first matching console line, or "-"
first_time() { awk -v re="$2" '$0 ~ re { print $1; found = 1; exit } END { if (!found) print "-" }' "$1"; }

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

FAILS=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }

# --- the stand-in agent image (for timing, and for checks when there is no real image)
STANDIN_BIN=$SMOKE/standin-agent
STANDIN_IMG=${STANDIN_IMG:-$SMOKE/rootfs-standin.erofs}
if [ ! -x "$STANDIN_BIN" ] || [ guest/standin-agent.ts -nt "$STANDIN_BIN" ]; then
	"$BUN" build --compile guest/standin-agent.ts --outfile "$STANDIN_BIN" >/dev/null
fi
if [ "$STANDIN_IMG" = "$SMOKE/rootfs-standin.erofs" ] && { [ ! -f "$STANDIN_IMG" ] ||
	[ "$STANDIN_BIN" -nt "$STANDIN_IMG" ] || [ guest/mkrootfs.sh -nt "$STANDIN_IMG" ]; }; then
	guest/mkrootfs.sh "$STANDIN_BIN" "$STANDIN_IMG" 2>/dev/null
fi
if [ -z "$IMAGE" ]; then
	if [ -f build/guest/rootfs.erofs ]; then IMAGE=build/guest/rootfs.erofs; else IMAGE=$STANDIN_IMG; fi
fi

echo "kernel:  $KERNEL ($(wc -c <"$KERNEL") bytes)"
echo "initrd:  $INITRD ($(wc -c <"$INITRD") bytes)"
echo "image:   $IMAGE ($(wc -c <"$IMAGE") bytes)"
echo "tsc_early_khz=$TSC_KHZ (guest/host-tsc-khz.sh)"

# --- 1. checks
if [ -n "$DO_CHECKS" ]; then
	TOKEN="smoke-$$-$RANDOM$RANDOM"
	setup_checks() {
		echo "$TOKEN" >"$1/hello.txt"
		# An OCI bundle for crun in the guest: a busybox rootfs that echoes a line.
		mkdir -p "$1/bundle/rootfs/bin"
		cp /bin/busybox "$1/bundle/rootfs/bin/busybox"
		(cd "$1/bundle" && crun spec)
		sed -i -e 's/"terminal": true/"terminal": false/' \
			-e 's|^\(\s*\)"sh"$|\1"/bin/busybox", "echo", "hello-from-container"|' "$1/bundle/config.json"
		cat >"$1/checks.sh" <<'CHECKS'
#!/bin/sh
# Runs in the guest as PID 1 (cc.init), with the host directory mounted on /mnt.
echo "SMOKE pid=$$"
echo "SMOKE uname-r=$(uname -r)"
port=
for d in /sys/class/virtio-ports/*; do
	[ -f "$d/name" ] || continue
	n=$(cat "$d/name")
	echo "SMOKE port $(basename "$d") name=$n"
	[ "$n" = agent ] && port=/dev/$(basename "$d")
done
ls -l /dev/vport* /dev/virtio-ports/ 2>&1 | sed 's/^/SMOKE ls: /'
if [ -n "$port" ] && [ -c "$port" ]; then echo "SMOKE agent-port=$port"; fi
[ -e /dev/virtio-ports/agent ] && echo "SMOKE agent-link=$(readlink /dev/virtio-ports/agent)"
grep ' /mnt ' /proc/mounts | sed 's/^/SMOKE 9p-mount: /'
echo "SMOKE 9p-read=$(cat /mnt/hello.txt)"
echo "written by the guest" >/mnt/from-guest.txt && echo "SMOKE 9p-write=ok"
crun --version | sed 's/^/SMOKE crun: /'
echo "SMOKE modules=$(wc -l </proc/modules)"
cat /proc/mounts | sed 's/^/SMOKE mounts: /'
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup || echo "SMOKE cannot mount cgroup2"
crun run --bundle /mnt/bundle smoke 2>&1 | sed 's/^/SMOKE container: /'
if [ -x /usr/bin/cc-oci-runtime ]; then
	timeout 30 /usr/bin/cc-oci-runtime --version 2>&1 | head -n 5 | sed 's/^/SMOKE agent-version: /'
fi
echo "SMOKE done"
poweroff -f
CHECKS
	}
	WORKLOAD_SETUP=setup_checks
	MOUNT9P='mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 workload /mnt'
	boot checks "$IMAGE" "cc.init=\"/bin/sh -c '$MOUNT9P && exec /bin/sh /mnt/checks.sh; echo SMOKE 9p mount failed; poweroff -f'\""
	WORKLOAD_SETUP=
	L=$SMOKE/checks.log
	echo "--- checks boot: console in $L, QEMU exit $BOOT_RC after ${BOOT_EXIT}s"
	grep -q 'cc-init: start' "$L" && ok "initramfs /init ran" || bad "no 'cc-init: start' line"
	grep 'cc-init: FATAL' "$L" && bad "init reported a failure"
	grep -q 'SMOKE pid=1$' "$L" && ok "cc.init command ran as PID 1 after switch_root" || bad "cc.init did not run as PID 1"
	r=$(sed -n 's/.*SMOKE uname-r=//p' "$L")
	[ -n "$r" ] && ok "guest kernel: $r" || bad "no uname -r"
	p=$(sed -n 's/.*SMOKE agent-port=//p' "$L")
	[ -n "$p" ] && ok "agent virtio-serial port: $p (name=agent in /sys/class/virtio-ports)" || bad "no virtio-serial port named agent"
	a=$(sed -n 's/.*SMOKE agent-link=//p' "$L")
	[ -n "$a" ] && ok "/dev/virtio-ports/agent -> $a" || bad "no /dev/virtio-ports/agent link"
	grep -q "SMOKE 9p-read=$TOKEN" "$L" && ok "9p share mounted, host file read ($MOUNT9P)" || bad "9p read"
	grep -q 'SMOKE 9p-write=ok' "$L" && ok "9p write from the guest" || bad "9p write"
	c=$(sed -n 's/.*SMOKE crun: \(crun version.*\)/\1/p' "$L" | head -n 1)
	[ -n "$c" ] && ok "crun runs: $c" || bad "crun --version"
	grep -q 'SMOKE container: hello-from-container' "$L" && ok "crun ran a container (busybox bundle on the 9p share)" || bad "crun run"
	m=$(sed -n 's/.*SMOKE modules=//p' "$L")
	[ -n "$m" ] && ok "$m modules loaded" || bad "no module count"
	grep -q 'SMOKE done' "$L" && ok "checks completed" || bad "checks did not complete"
	[ "$BOOT_RC" = 0 ] && ok "QEMU exited by itself (poweroff), status 0" || bad "QEMU exit status $BOOT_RC"
fi

# --- 2. timing
if [ -n "$DO_TIMING" ] && [ "$RUNS" -gt 0 ]; then
	echo "--- timing: $RUNS cold boots of the stand-in agent ($STANDIN_IMG)"
	: >"$SMOKE/timing.txt"
	for i in $(seq 1 "$RUNS"); do
		boot "timing$i" "$STANDIN_IMG" ""
		L=$SMOKE/timing$i.log
		ti=$(first_time "$L" 'cc-init: start')
		ta=$(first_time "$L" 'AGENT-READY')
		echo "$ti $ta $BOOT_EXIT" >>"$SMOKE/timing.txt"
		printf 'boot %d: init %ss, agent output %ss, QEMU exit %ss (status %s)\n' "$i" "$ti" "$ta" "$BOOT_EXIT" "$BOOT_RC"
		[ "$ta" != - ] || bad "boot $i: no AGENT-READY (see $L)"
		grep -q 'AGENT-READY pid=1 argv=\[.*"__agent"\]' "$L" || bad "boot $i: agent not PID 1 with __agent"
	done
	printf 'median of %d: init %ss, agent output %ss, QEMU exit %ss\n' "$RUNS" \
		"$(cut -d' ' -f1 "$SMOKE/timing.txt" | grep -v -- - | median)" \
		"$(cut -d' ' -f2 "$SMOKE/timing.txt" | grep -v -- - | median)" \
		"$(cut -d' ' -f3 "$SMOKE/timing.txt" | median)"
fi

if [ "$FAILS" -gt 0 ]; then
	echo "smoke-boot: $FAILS check(s) failed"
	exit 1
fi
echo "smoke-boot: all checks passed"
