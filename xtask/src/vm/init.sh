#!/bin/busybox sh
# PID 1 of each kernel-matrix VM (xtask/src/vm/). Runs `profiler check`, then real workloads
# under one `profiler attach`, and prints each result between `=== ` markers on the console for
# the host to parse (xtask/src/vm/check.rs, workloads.rs). Every wait is bounded, so a hang
# costs time but never blocks: what is missing shows as missing on the host.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
ip link set lo up
echo "=== release $(uname -r)"

# wait_gone PID SECONDS: until PID has exited (the shell reaps it while `sleep` runs) or
# SECONDS have passed.
wait_gone() {
  n=0
  while [ -d /proc/$1 ] && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done
}

# wait_line FILE TEXT SECONDS PID: until FILE holds TEXT; fails when PID exits first or when
# SECONDS have passed.
wait_line() {
  n=0
  until grep -q "$2" "$1" 2>/dev/null; do
    [ -d /proc/$4 ] && [ $n -lt $(($3 * 10)) ] || return 1
    sleep 0.1
    n=$((n + 1))
  done
}

# cpu_ticks PID: utime + stime from /proc/PID/stat, in clock ticks (USER_HZ, 100 on x86).
cpu_ticks() {
  set -- $(cut -d' ' -f14,15 /proc/$1/stat)
  echo $(($1 + $2))
}

# Seconds since boot × 100.
uptime_cs() {
  read u _ < /proc/uptime
  echo "${u%.*}${u#*.}"
}

# gets N URL: N requests, a fresh connection each (busybox wget closes it); prints how many
# succeeded. Gives up after 5 failures (a dead server costs 25 s, not 50 × 5 s).
gets() {
  ok=0
  failed=0
  for _ in $(seq $1); do
    # (busybox wget's own -T segfaults in these VMs.)
    if timeout 5 wget -q -O /dev/null "$2" 2>> /tmp/wget.err; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
      [ $failed -lt 5 ] || break
    fi
  done
  echo $ok
}

check() {
  /bin/profiler check > /tmp/check.txt 2>&1 &
  P=$!
  i=0
  while [ -d /proc/$P ] && [ $i -lt 90 ]; do sleep 1; i=$((i+1)); done
  if [ -d /proc/$P ]; then
    # Hung (seen once on 6.1 under software emulation): where each thread waits, for the log.
    echo "=== check-hung after $i s"
    for t in /proc/$P/task/*; do echo "--- $(cat $t/comm) wchan $(cat $t/wchan)"; cat $t/stack; done
    HUNG=1
  else
    wait $P
    echo "=== check-exit $?"
  fi
  echo "=== check-begin"
  cat /tmp/check.txt
  echo "=== check-end"
}

# The workloads, under one `profiler attach`: a fork-per-connection server (busybox httpd), a
# one-process server (the tests' hyper server), a CPU burner and the CUDA stand-in.
#
# The burner is stopped (SIGSTOP) before the profiler starts and from just before it stops,
# and runs only between two readings of its /proc CPU time taken inside the profiler's window:
# the /proc delta is then its CPU time over the profiler's window, exactly, with no polling
# delay at either end.
workloads() {
  mkdir -p /www && echo "hello from busybox httpd" > /www/index.html
  httpd -f -p 127.0.0.1:8081 -h /www &
  H=$!
  /bin/http-server --port 8082 --log /tmp/http-server.log > /tmp/http-server.out 2>&1 &
  S=$!
  sh -c 'while :; do :; done' &
  B=$!
  kill -STOP $B
  # Loads the stand-in libraries, then waits (at most 30 s) until its functions carry uprobes.
  /cuda/cuda-workload --lib-dir /cuda/lib --wait-for-probes 30000 --truth /tmp/cuda.json \
    > /tmp/cuda.out 2>&1 &
  C=$!
  echo "=== workloads httpd=$H http-server=$S burner=$B cuda=$C"
  wait_line /tmp/http-server.out "listening on" 30 $S || echo "=== http-server did not start"
  /bin/profiler attach --pid $H --pid $S --pid $B --pid $C --duration 300s --quiet \
    --format json --output /tmp/report.json 2> /tmp/profiler.err &
  PR=$!
  if wait_line /tmp/profiler.err "attached to pid" 90 $PR; then
    T0=$(cpu_ticks $B)
    U0=$(uptime_cs)
    kill -CONT $B
    echo "=== wget fork-per-connection $(gets 50 http://127.0.0.1:8081/index.html)"
    echo "=== wget one-process $(gets 50 http://127.0.0.1:8082/)"
    wait_gone $C 40
    # At least 4 s of burning: /proc counts in 10 ms ticks.
    while [ $(uptime_cs) -lt $((U0 + 400)) ]; do sleep 0.2; done
    kill -STOP $B
    T1=$(cpu_ticks $B)
    echo "=== burner-ticks $T0 $T1"
    kill -INT $PR
    wait_gone $PR 30
    [ -d /proc/$PR ] && echo "=== profiler did not stop within 30 s"
  else
    echo "=== profiler did not attach"
    kill $PR 2>/dev/null
  fi
  echo "=== profiler-stderr-begin"
  cat /tmp/profiler.err
  echo "=== profiler-stderr-end"
  sort -u /tmp/wget.err 2>/dev/null | head -5 | sed 's/^/=== wget: /'
  echo "=== http-server-log $(wc -l < /tmp/http-server.log)"
  echo "=== cuda-truth $(cat /tmp/cuda.json 2>/dev/null)"
  sed 's/^/=== cuda-workload: /' /tmp/cuda.out
  echo "=== report-begin"
  cat /tmp/report.json 2>/dev/null
  echo
  echo "=== report-end"
}

HUNG=0
check
# After a hang the host boots this kernel again: no time spent on workloads here.
[ $HUNG = 1 ] || workloads
poweroff -f
