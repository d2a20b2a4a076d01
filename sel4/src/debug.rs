//! Debug printing through the kernel console. On a kernel built without
//! printing (the release flavor) it compiles to nothing.

/// Prints one byte on the kernel console, if the kernel has one.
#[inline]
pub fn debug_put_char(c: u8) {
    #[cfg(sel4_printing)]
    crate::syscall::debug_put_char(c);
    #[cfg(not(sel4_printing))]
    let _ = c;
}

/// `core::fmt` sink for the kernel console; used by [`debug_print!`](crate::debug_print).
pub struct DebugWriter;

impl core::fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(debug_put_char);
        Ok(())
    }
}

/// `print!` for the kernel console.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::DebugWriter, format_args!($($arg)*));
    }};
}

/// `println!` for the kernel console.
#[macro_export]
macro_rules! debug_println {
    () => { $crate::debug_print!("\n") };
    ($($arg:tt)*) => {{
        $crate::debug_print!($($arg)*);
        $crate::debug_print!("\n");
    }};
}
