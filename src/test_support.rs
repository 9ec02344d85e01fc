//! Owns what gitmq's tests share: the one seeded pseudo-random generator ([`TestRng`],
//! xorshift64*: deterministic, no dependency), so a property test's inputs are reproducible
//! from its seed. Compiled for the crate's own tests and, with the `internals` feature, for
//! the integration tests, benches and fuzz harness; not part of the API.

/// A deterministic pseudo-random generator for tests (xorshift64*).
///
/// ```
/// use gitmq::test_support::TestRng;
/// let (mut a, mut b) = (TestRng::new(7), TestRng::new(7));
/// assert_eq!(a.next_u64(), b.next_u64(), "same seed, same sequence");
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator started from `seed` (any value; zero is mapped to a valid state).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).expect("BUG: below n, which is a usize")
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_be_bytes()[0]
    }
}
