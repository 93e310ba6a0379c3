//! Test helpers: an in-memory file the tests read back after the writer is done with it.

use std::{cell::RefCell, io::Write, rc::Rc};

use serde_json::Value;

#[derive(Clone, Default)]
pub struct MemorySink(Rc<RefCell<Vec<u8>>>);

impl Write for MemorySink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MemorySink {
    /// The bytes written, parsed (panics when they are not valid JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.0.borrow()).expect("the trace is valid JSON")
    }
}
