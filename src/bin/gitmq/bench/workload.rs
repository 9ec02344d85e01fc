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
