//! A reader of protobuf's wire format over a byte slice, for the
//! hand-written decoders of the hot ingest paths (remote write, Loki
//! push): fields are borrowed from the body instead of copied into the
//! `String`s and `Vec`s prost would allocate.

/// Why a body is not the protobuf message it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body ends inside a field.
    #[error("truncated message at byte {0}")]
    Truncated(usize),
    /// A varint longer than 10 bytes.
    #[error("invalid varint at byte {0}")]
    BadVarint(usize),
    /// A wire type protobuf does not define (or groups).
    #[error("unsupported wire type {0} at byte {1}")]
    BadWireType(u8, usize),
    /// A string field (named) that is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    /// A field number of 0.
    #[error("invalid field number 0 at byte {0}")]
    ZeroField(usize),
}

/// Reads one message's fields in order; positions in errors count from
/// the start of the whole body (`base` is where `buf` starts in it).
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf`, which starts at byte `base` of the body.
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// Where the cursor is in its buffer.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// True once every field is read.
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Where the cursor is in the whole body.
    pub(crate) fn at(&self) -> usize {
        self.base + self.pos
    }

    /// A varint; one byte (every tag and short length) without a loop.
    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated(self.at()))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint(self.at()))
    }

    /// The next field's number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u64, u8), DecodeError> {
        let at = self.at();
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(DecodeError::ZeroField(at));
        }
        Ok((field, (k & 7) as u8))
    }

    /// A length-delimited field's bytes and where they start in the body.
    pub(crate) fn bytes(&mut self) -> Result<(&'a [u8], usize), DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated(self.at()))?;
        let start = self.pos;
        let end = start.checked_add(len).ok_or(DecodeError::Truncated(self.at()))?;
        let b = self.buf.get(start..end).ok_or(DecodeError::Truncated(self.at()))?;
        self.pos = end;
        Ok((b, self.base + start))
    }

    /// The bytes of the next field, which must be field `field` of wire
    /// type 2 (the caller knows the run holds only such fields).
    pub(crate) fn bytes_of_field(&mut self, field: u64) -> Result<(&'a [u8], usize), DecodeError> {
        match self.key()? {
            (f, 2) if f == field => self.bytes(),
            (_, w) => Err(DecodeError::BadWireType(w, self.at())),
        }
    }

    /// A 64-bit little-endian field.
    pub(crate) fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let b = self
            .buf
            .get(self.pos..self.pos + 8)
            .ok_or(DecodeError::Truncated(self.at()))?;
        self.pos += 8;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skips a field this decoder does not know.
    pub(crate) fn skip(&mut self, field: u64, wire: u8) -> Result<(), DecodeError> {
        self.skip_nested(wire, field, 0)
    }

    /// Skips one unknown field; `field` and `depth` track legacy groups
    /// (wire type 3 … 4), which protobuf parsers skip like any unknown field.
    fn skip_nested(&mut self, wire: u8, field: u64, depth: u32) -> Result<(), DecodeError> {
        match wire {
            3 => {
                if depth >= 64 {
                    return Err(DecodeError::BadWireType(3, self.at()));
                }
                loop {
                    let (f, w) = self.key()?;
                    if w == 4 {
                        return if f == field {
                            Ok(())
                        } else {
                            Err(DecodeError::BadWireType(4, self.at()))
                        };
                    }
                    self.skip_nested(w, f, depth + 1)?;
                }
            }
            0 => self.varint().map(|_| ()),
            1 => self.fixed64().map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(DecodeError::Truncated(self.at()));
                }
                self.pos += 4;
                Ok(())
            }
            w => Err(DecodeError::BadWireType(w, self.at())),
        }
    }
}
