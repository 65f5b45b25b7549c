//! A tiny deterministic generator for the log storage's tests
//! (xorshift64, no extra dependency): the same numbers from the same seed
//! on every machine.

/// xorshift64.
pub struct TestRng(u64);

impl TestRng {
    /// A generator seeded with `seed` (not zero).
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }

    /// The next 64-bit number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (above zero).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
