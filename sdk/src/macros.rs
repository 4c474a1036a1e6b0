//! Declarative macros: typed messaging and logging.
//!
//! They are thin spellings of functions in this crate (`encode` + `send`,
//! `recv_as`, `log` + `format!`), so that the behaviour is documented and
//! tested once, in the functions.

/// Encodes a value with postcard and sends it as a `Data` message.
///
/// `send!(pid, value)` is `send(&pid, &encode(&value))`; the pid may be given
/// by value or by reference. Evaluates to `Result<(), SendError>`.
#[macro_export]
macro_rules! send {
    ($pid:expr, $value:expr $(,)?) => {
        $crate::send(&$pid, &$crate::encode(&$value))
    };
}

/// Waits for the next `Data` message that decodes as the given type.
///
/// `recv!(Type, timeout)` evaluates to `Option<Type>`: `None` when the
/// timeout (`Option<Duration>`, `None` = forever; `recv!(Type)` is the same)
/// passes first. Messages of other kinds are dropped with a debug log; see
/// [`recv_as`](crate::recv_as).
#[macro_export]
macro_rules! recv {
    ($ty:ty $(,)?) => {
        $crate::recv_as::<$ty>(::core::option::Option::None)
    };
    ($ty:ty, $timeout:expr $(,)?) => {
        $crate::recv_as::<$ty>($timeout)
    };
}

/// Logs at `trace` level with `format!` arguments.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Trace, &::std::format!($($arg)+))
    };
}

/// Logs at `debug` level with `format!` arguments.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Debug, &::std::format!($($arg)+))
    };
}

/// Logs at `info` level with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Info, &::std::format!($($arg)+))
    };
}

/// Logs at `warn` level with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Warn, &::std::format!($($arg)+))
    };
}

/// Logs at `error` level with `format!` arguments.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Error, &::std::format!($($arg)+))
    };
}
