//! Pure codecs: XML <-> JSON values for the two encodings, and the streaming reader of import
//! bodies. No I/O beyond the `Read` they are given.

pub mod bounds;
pub mod records;
pub mod xml;
