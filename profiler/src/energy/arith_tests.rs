use super::*;

#[test]
fn wrap_delta_handles_plain_wrapped_and_reset_counters() {
    assert_eq!(wrap_delta(100, 250, 1000), Some(150));
    // 262143328850 µJ is a typical max_energy_range_uj.
    let max = 262_143_328_850;
    assert_eq!(wrap_delta(max - 1_000, 4_000, max), Some(5_000));
    assert_eq!(wrap_delta(max, 0, max), Some(0));
    // Backwards with no known range, or from beyond the range: a reset, not a wrap.
    assert_eq!(wrap_delta(500, 10, 0), None);
    assert_eq!(wrap_delta(2_000, 10, 1_000), None);
}

#[test]
fn proc_stat_busy_excludes_idle_and_iowait() {
    let s = "cpu  1592114 0 295989 1657413 25334 0 10215 28782 0 0\n\
             cpu0 745448 0 138707 895025 7016 0 4099 14363 0 0\n";
    let t = parse_proc_stat(s).unwrap();
    assert_eq!(t.total, 1592114 + 295989 + 1657413 + 25334 + 10215 + 28782);
    assert_eq!(t.busy, 1592114 + 295989 + 10215 + 28782);
    assert_eq!(parse_proc_stat("intr 1 2 3\n"), None);
}

#[test]
fn pid_ticks_survive_odd_command_names() {
    let line = "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                150 50 0 0 20 0 8 0 12345 1000000 500 18446744073709551615";
    assert_eq!(parse_pid_ticks(line), Some(200));
    assert_eq!(parse_pid_ticks("4242 (x) S 1"), None);
    assert_eq!(parse_pid_ticks("garbage"), None);
}

#[test]
fn pmu_event_configs_and_cpu_lists_parse() {
    assert_eq!(parse_event_config("event=0x02\n"), Some(2));
    assert_eq!(parse_event_config("event=0x05,umask=0x0"), Some(5));
    assert_eq!(parse_event_config("umask=1"), None);
    assert_eq!(parse_cpu_list("0\n"), Some(vec![0]));
    assert_eq!(parse_cpu_list("0,48"), Some(vec![0, 48]));
    assert_eq!(parse_cpu_list("0-2,8"), Some(vec![0, 1, 2, 8]));
    assert_eq!(parse_cpu_list(""), None);
}

#[test]
fn cpu_share_is_clamped() {
    assert_eq!(cpu_share(25, 100), 0.25);
    assert_eq!(cpu_share(120, 100), 1.0);
    assert_eq!(cpu_share(0, 0), 0.0);
    assert_eq!(cpu_share(3, 0), 1.0);
}
