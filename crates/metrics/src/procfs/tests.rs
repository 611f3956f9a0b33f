use super::*;

const STAT: &str = "cpu  2738447 65742 621108 2847457 65394 0 25027 4582 0 0\n\
cpu0 1295635 32382 299785 1519779 22513 0 10087 2253 0 0\n\
cpu1 1442811 33359 321322 1327677 42880 0 14939 2328 0 0\n\
intr 1 2 3\n\
ctxt 123\n\
cpufreq 9\n";

#[test]
fn stat_gives_the_cpu_totals_and_the_online_cores() {
    let s = parse_stat(STAT);
    assert_eq!(s.cores, 2);
    assert_eq!(s.cpu.user, 2_738_447);
    assert_eq!(s.cpu.nice, 65_742);
    assert_eq!(s.cpu.steal, 4_582);
    assert_eq!(
        s.cpu.total(),
        2_738_447 + 65_742 + 621_108 + 2_847_457 + 65_394 + 25_027 + 4_582
    );
    // Short or garbled lines read as zeros, never panic.
    let odd = parse_stat("cpu 1 x\ncpuX 1\ncpu-1 2\n\n");
    assert_eq!(odd.cpu.user, 1);
    assert_eq!(odd.cores, 0);
}

#[test]
fn cpu_percents_are_shares_of_the_interval_rounded_to_two_decimals() {
    let before = CpuTimes::default();
    let after = CpuTimes {
        user: 1,
        system: 1,
        idle: 1,
        ..CpuTimes::default()
    };
    assert_eq!(cpu_percents(&before, &after), (33.33, 33.33, 33.33, 0.0));
    // No time passed, or the counters went back (another boot): zeros, not NaN.
    assert_eq!(cpu_percents(&after, &after), (0.0, 0.0, 0.0, 0.0));
    assert_eq!(cpu_percents(&after, &before), (0.0, 0.0, 0.0, 0.0));
}

#[test]
fn loadavg_and_uptime_parse() {
    assert_eq!(
        parse_loadavg("1.65 1.87 1.75 5/132 3328\n"),
        Some((1.65, 1.87, 1.75))
    );
    assert_eq!(parse_loadavg("1.0 x"), None);
    assert_eq!(parse_uptime("32051.73 28474.57\n"), Some(32051));
    assert_eq!(parse_uptime("-1 0"), None);
    assert_eq!(parse_uptime(""), None);
}

#[test]
fn meminfo_is_read_in_bytes() {
    let m = parse_meminfo(
        "MemTotal:       16384 kB\nMemFree:  1024 kB\nBuffers: 2 kB\nCached: 3 kB\n\
         SwapCached: 99 kB\nSwapTotal: 8 kB\nSwapFree: 4 kB\nHugePages_Total: 0\nbad line\n",
    );
    assert_eq!(
        m,
        MemInfo {
            total: 16384 * 1024,
            free: 1024 * 1024,
            buffers: 2048,
            cached: 3072,
            swap_total: 8192,
            swap_free: 4096,
        }
    );
}

#[test]
fn net_dev_gives_each_interface_its_counters() {
    let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo: 143189357746 44710839    0    0    0     0          0         0 143189357746 44710839    0    0    0     0       0          0\n  \
eth0: 10 20 30 40 0 0 0 0 50 60 70 80 0 0 0 0\n  \
short: 1 2 3\n";
    let devs = parse_net_dev(text, 16);
    assert_eq!(devs.len(), 2);
    assert_eq!(devs[0].name, "lo");
    assert_eq!(devs[0].rx_bytes, 143_189_357_746);
    assert_eq!(
        devs[1],
        NetDev {
            name: "eth0".into(),
            rx_bytes: 10,
            rx_packets: 20,
            rx_errors: 30,
            rx_dropped: 40,
            tx_bytes: 50,
            tx_packets: 60,
            tx_errors: 70,
            tx_dropped: 80,
        }
    );
    assert_eq!(parse_net_dev(text, 1).len(), 1);
}

#[test]
fn mounts_keep_real_filesystems_once_per_path() {
    let nodev = parse_nodev("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text4\nnodev\toverlay\n");
    assert!(nodev.contains("tmpfs") && !nodev.contains("ext4"));
    let mounts = "proc /proc proc rw 0 0\n\
sysfs /sys sysfs rw 0 0\n\
/dev/sda1 / ext4 rw 0 0\n\
tmpfs /run tmpfs rw 0 0\n\
cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n\
/dev/sdb1 /var/lib/my\\040disk xfs rw 0 0\n\
/dev/sda1 / ext4 ro 0 0\n\
overlay /var/lib/mesos/rootfs overlay rw 0 0\n\
nsfs /run/netns/x nsfs rw 0 0\n\
weird\n\
/dev/sdc1 relative ext4 rw 0 0\n";
    let got = parse_mounts(mounts, &nodev, 16);
    let paths: Vec<&str> = got.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/var/lib/my disk", "/"]);
    assert_eq!(parse_mounts(mounts, &HashSet::new(), 1).len(), 1);
    // Without /proc/filesystems the built-in list still skips pseudo filesystems.
    assert_eq!(parse_mounts(mounts, &HashSet::new(), 16).len(), 2);
}

#[test]
fn octal_escapes_are_undone_and_broken_ones_kept() {
    assert_eq!(unescape_octal("/a\\040b\\011c"), "/a b\tc");
    assert_eq!(unescape_octal("/a\\04"), "/a\\04");
    assert_eq!(unescape_octal("/a\\999"), "/a\\999");
    assert_eq!(unescape_octal("\\"), "\\");
}

#[test]
fn processes_are_the_numeric_entries() {
    let names = ["1", "42", "self", "sys", "", "7x"].map(String::from);
    assert_eq!(count_processes(names), 2);
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,400}") {
        let _ = parse_stat(&text);
        let _ = parse_loadavg(&text);
        let _ = parse_uptime(&text);
        let _ = parse_meminfo(&text);
        let _ = parse_net_dev(&text, 8);
        let _ = parse_mounts(&text, &parse_nodev(&text), 8);
    }
}
