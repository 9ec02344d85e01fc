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
