//! The benchmark workload: N distinct ~150-byte JSON messages, the same for every tool.

/// The `i`-th message.
pub fn message(i: usize) -> Vec<u8> {
    format!(
        r#"{{"id":{i},"type":"order.created","customer":"c-{:06}","items":[{{"sku":"SKU-{}","qty":{}}}],"total":{}.{:02},"ts":"2026-11-27T12:00:00Z"}}"#,
        i % 1_000_000,
        i % 9973,
        i % 7 + 1,
        i % 1000,
        i % 100
    )
    .into_bytes()
}

/// The `i`-th message with a ~1.5 KB envelope every message shares and 0-63 bytes of
/// padding that varies: messages git stores as deltas against each other once a server is
/// repacked, in both directions of age (for `bench fetch --thin --similar-payloads`).
pub fn similar_message(i: usize) -> Vec<u8> {
    let mut message = message(i);
    message.pop(); // the closing brace
    message.extend_from_slice(br#","envelope":{"schema":"orders/v7","source":"checkout-service","#);
    for k in 0..24 {
        message.extend_from_slice(
            format!(r#""attr{k}":"an attribute every event of this stream carries","#).as_bytes(),
        );
    }
    message.extend_from_slice(br#""end":true},"pad":""#);
    message.extend(std::iter::repeat_n(b'x', i.wrapping_mul(7919) % 64));
    message.extend_from_slice(b"\"}");
    message
}

/// Messages `0..n`.
pub fn messages(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(message).collect()
}

/// Rate in messages per second.
pub fn rate(n: usize, seconds: f64) -> f64 {
    n as f64 / seconds.max(1e-9)
}

/// A human-friendly rate.
pub fn fmt_rate(rate: f64) -> String {
    let rounded = rate.round() as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPU seconds used so far (user + system, every thread), of this process and of its waited-for
/// children (`git`), from `/proc/self/stat` (Linux; zeros elsewhere). On a shared machine the
/// wall-clock rate follows the load; the CPU time per message does much less.
pub fn cpu_seconds() -> CpuTime {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces): utime, stime, cutime and
    // cstime are the 12th to 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    CpuTime {
        own: ticks(11) + ticks(12),
        children: ticks(13) + ticks(14),
    }
}

/// CPU seconds of this process and of its children (see [`cpu_seconds()`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub own: f64,
    pub children: f64,
}

impl CpuTime {
    /// Microseconds per message of both since `earlier`, over `n` messages.
    pub fn us_per_message_since(self, earlier: CpuTime, n: usize) -> f64 {
        (self.own - earlier.own + self.children - earlier.children) * 1e6 / n.max(1) as f64
    }
}
