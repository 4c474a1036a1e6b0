//! `plasmoid store get | put | delete | list`: an operator's view of a
//! running release's buckets, through the node's control endpoint (and so
//! admitted like every control command: the release's client key).

use crate::control::{Connect, Encoding, ask, encode, print_reply};
use anyhow::Result;
use plasmoid_mesh::{Request, StoreRequest};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum StoreCommand {
    /// Print the value under KEY.
    Get {
        bucket: String,
        /// The key (`--key` is the client key file, as for every control command).
        #[arg(value_name = "KEY")]
        item: String,
        /// How to print the value.
        #[arg(long = "as", value_enum, default_value = "text")]
        encoding: Encoding,
        #[command(flatten)]
        to: Connect,
    },
    /// Store VALUE under KEY (durable when this returns).
    Put {
        bucket: String,
        /// The key (`--key` is the client key file, as for every control command).
        #[arg(value_name = "KEY")]
        item: String,
        value: String,
        #[arg(long = "as", value_enum, default_value = "text")]
        encoding: Encoding,
        #[command(flatten)]
        to: Connect,
    },
    /// Remove KEY.
    Delete {
        bucket: String,
        /// The key (`--key` is the client key file, as for every control command).
        #[arg(value_name = "KEY")]
        item: String,
        #[command(flatten)]
        to: Connect,
    },
    /// Print every key of the bucket, one per line.
    List {
        bucket: String,
        #[command(flatten)]
        to: Connect,
    },
}

pub fn run(cmd: StoreCommand) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (to, bucket, op, encoding) = match cmd {
            StoreCommand::Get {
                bucket,
                item,
                encoding,
                to,
            } => (to, bucket, StoreRequest::Get(item), encoding),
            StoreCommand::Put {
                bucket,
                item,
                value,
                encoding,
                to,
            } => {
                let v = encode(&value, encoding)?;
                (to, bucket, StoreRequest::Put(item, v), Encoding::Text)
            }
            StoreCommand::Delete { bucket, item, to } => {
                (to, bucket, StoreRequest::Delete(item), Encoding::Text)
            }
            StoreCommand::List { bucket, to } => (to, bucket, StoreRequest::List, Encoding::Text),
        };
        print_reply(ask(&to, &Request::Store { bucket, op }).await?, encoding)
    })
}
