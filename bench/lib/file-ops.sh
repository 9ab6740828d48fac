# The file operations the files section (bench/lib/files.ts) and bench/share-modes.sh time,
# sourced by both: `measure DIR LABEL` prints "LABEL OP MS" for each OP, timed from
# /proc/uptime (10 ms steps); it needs $SRC_TAR, a tar of 2000 small files (`make_src_tar DIR`).
up() { cut -d' ' -f1 /proc/uptime; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%d", (b-a)*1000}'; }
make_src_tar() {
  mkdir -p "$1/t/src"; i=0; while [ $i -lt 2000 ]; do echo "file $i" > "$1/t/src/$i"; i=$((i+1)); done
  SRC_TAR=$1/src.tar; tar cf "$SRC_TAR" -C "$1/t" src && rm -rf "$1/t"
}
measure() {
  d=$1; mkdir -p $d/s $d/x
  a=$(up); dd if=/dev/zero of=$d/f bs=1M count=50 conv=fsync 2>/dev/null; b=$(up); echo "$2 write $(ms $a $b)"
  a=$(up); dd if=$d/f of=/dev/null bs=1M 2>/dev/null; b=$(up); echo "$2 read $(ms $a $b)"
  a=$(up); i=0; while [ $i -lt 2000 ]; do echo x > $d/s/$i; i=$((i+1)); done; b=$(up); echo "$2 create $(ms $a $b)"
  a=$(up); ls -l $d/s > /dev/null; b=$(up); echo "$2 stat $(ms $a $b)"
  a=$(up); tar xf $SRC_TAR -C $d/x; b=$(up); echo "$2 tarx $(ms $a $b)"
  rm -rf $d/s $d/x $d/f
}
