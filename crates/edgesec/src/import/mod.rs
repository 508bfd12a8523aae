//! `config import [AZIOT_CONFIG] [-o FILE] [-f]`: converts an IoT Edge super-config into an
//! edgesec config. Keys (a connection string's, a SAS or DPS symmetric key) go into keyd when
//! it answers, else into a 0600 file next to the output that the new config refers to by
//! `file://`; they are never written into the config itself. See docs/config-import.md.

mod aziot;
mod convert;
mod edge_ca;
mod emit;
mod provisioning;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use edgesec_keyd::client::KeydClient;
use edgesec_keys::{SignAlgorithm, SignInput, SymmetricUsage};

pub use convert::{Converted, Note, NoteKind, Opts, convert};

use crate::ctx::Ctx;
use crate::error::{CliError, Result};

pub const DEFAULT_INPUT: &str = "/etc/aziot/config.toml";

pub struct ImportArgs {
    pub input: PathBuf,
    /// `-` for stdout; default: the `--config` path.
    pub output: Option<PathBuf>,
    pub force: bool,
    pub keyd_socket: Option<PathBuf>,
    pub state_dir: PathBuf,
}

/// Where a key ended up.
enum Placed {
    Keyd,
    AlreadyInKeyd,
    File(PathBuf),
}

async fn to_keyd(
    keyd: &KeydClient,
    s: &convert::Secret,
    force: bool,
) -> std::result::Result<Placed, String> {
    if let Ok(existing) = keyd.load_key(s.key_id).await {
        let probe = b"edgesec config import key check";
        let theirs = keyd
            .sign(
                &existing.key_handle,
                SignAlgorithm::HmacSha256,
                SignInput::Message(probe),
            )
            .await
            .map_err(|e| e.to_string())?;
        let ours = aws_hmac(&s.bytes, probe);
        if theirs == ours {
            return Ok(Placed::AlreadyInKeyd);
        }
        if !force {
            return Err(format!(
                "keyd already holds a different key {}; pass -f to replace it",
                s.key_id
            ));
        }
        keyd.delete(&existing.key_handle)
            .await
            .map_err(|e| e.to_string())?;
    }
    let req = edgesec_keyd::api::ImportRequest {
        key_id: s.key_id.into(),
        key_bytes: Some(s.bytes.to_vec()),
        usage: Some(SymmetricUsage::HmacSha256),
        ..Default::default()
    };
    keyd.import(&req).await.map_err(|e| e.to_string())?;
    Ok(Placed::Keyd)
}

fn aws_hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    aws_lc_rs::hmac::sign(&k, msg).as_ref().to_vec()
}

fn to_file(
    output: &Path,
    s: &convert::Secret,
    force: bool,
) -> std::result::Result<PathBuf, String> {
    let name = s.key_id.rsplit('/').next().unwrap_or("key");
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = std::path::absolute(dir.join(name)).map_err(|e| e.to_string())?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(&path).map_err(|e| {
        format!(
            "cannot write {}: {e}{}",
            path.display(),
            if force { "" } else { " (pass -f to overwrite)" }
        )
    })?;
    let text =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*s.bytes) + "\n");
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

pub async fn import(ctx: &Ctx, args: ImportArgs) -> Result<()> {
    let input = &args.input;
    let text = read_input(input)?;
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    let output = std::path::absolute(
        args.output
            .clone()
            .unwrap_or_else(|| ctx.config_path.clone()),
    )
    .map_err(|e| CliError::io("output path", e, "give -o FILE"))?;
    if !to_stdout && output.exists() && !args.force {
        return Err(CliError::new(
            format!("{} exists", output.display()),
            "pass -f to overwrite it, or -o to write elsewhere",
        ));
    }
    let keyd_socket = args
        .keyd_socket
        .clone()
        .or_else(|| ctx.config.as_ref().ok().map(|c| c.keyd.socket.clone()))
        .unwrap_or_else(|| PathBuf::from("/run/edgesec/keyd.sock"));
    let opts = Opts {
        state_dir: args.state_dir.clone(),
        keyd_socket: keyd_socket.clone(),
    };
    let mut conv = convert(input, &text, &opts).map_err(|e| {
        CliError::config(
            &e,
            "fix that key in the IoT Edge config and run the import again",
        )
    })?;

    let keyd = KeydClient::new(&keyd_socket);
    let reachable = std::os::unix::net::UnixStream::connect(&keyd_socket).is_ok();
    let mut key_lines = Vec::new();
    for s in &conv.secrets {
        let placed = if reachable {
            to_keyd(&keyd, s, args.force).await.map_err(|e| {
                CliError::new(
                    format!("{}: {e}", s.from),
                    "or give --keyd-socket of another keyd",
                )
            })?
        } else if to_stdout {
            return Err(CliError::new(
                format!(
                    "{} holds a key, keyd does not answer on {} and the output is stdout",
                    s.from,
                    keyd_socket.display()
                ),
                "start keyd (or give --keyd-socket), or give -o FILE so the key can be written to a private file next to it",
            ));
        } else {
            Placed::File(
                to_file(&output, s, args.force)
                    .map_err(|e| CliError::new(e, "choose another -o directory"))?,
            )
        };
        let reference = match &placed {
            Placed::Keyd | Placed::AlreadyInKeyd => format!("keyd:{}", s.key_id),
            Placed::File(p) => format!("file://{}", p.display()),
        };
        conv.doc.set(s.table, s.config_key, reference);
        key_lines.push(match placed {
            Placed::Keyd => format!("{}: imported into keyd ({}) as {}", s.from, keyd_socket.display(), s.key_id),
            Placed::AlreadyInKeyd => format!("{}: keyd ({}) already holds it as {}", s.from, keyd_socket.display(), s.key_id),
            Placed::File(p) => format!(
                "warning: {}: keyd does not answer on {}, so the key was written to {} (mode 0600) instead. \
                 It must be imported into keyd: edgesecd does that at its first start for a device SAS key; \
                 then delete the file. Or start keyd and run the import again.",
                s.from, keyd_socket.display(), p.display()
            ),
        });
    }

    let rendered = render(input, &conv);
    // what we write must load, or the import is wrong
    if let Err(e) = edgesecd::config::Config::parse(&output, &rendered) {
        return Err(CliError::new(
            format!("the converted config does not load: {e}"),
            "this is a bug in `edgesec config import`; please report it with the input (secrets removed)",
        ));
    }
    if to_stdout {
        print!("{rendered}");
    } else {
        write_atomic(&output, rendered.as_bytes()).map_err(|e| {
            CliError::io(
                format!("cannot write {}", output.display()),
                e,
                "check the directory exists and is writable",
            )
        })?;
    }
    eprint!(
        "{}",
        report(
            input,
            if to_stdout { None } else { Some(&output) },
            &conv.notes,
            &key_lines
        )
    );
    Ok(())
}

fn read_input(input: &Path) -> Result<String> {
    let hint = format!(
        "give the IoT Edge config as the argument (default {DEFAULT_INPUT}); run as root if it is not readable"
    );
    let meta =
        std::fs::metadata(input).map_err(|e| CliError::io(input.display(), e, hint.clone()))?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err(CliError::new(
            format!("{}: not a regular file of at most 1 MiB", input.display()),
            hint,
        ));
    }
    std::fs::read_to_string(input).map_err(|e| CliError::io(input.display(), e, hint))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn loc(n: &Note) -> String {
    match n.line {
        Some(l) => format!("{} (line {l})", n.key),
        None => n.key.clone(),
    }
}

/// The header of the converted config: where it came from and what was not carried over.
pub fn render(input: &Path, conv: &Converted) -> String {
    let mut header = vec![
        format!(
            "edgesec config, converted from {} by `edgesec config import`.",
            input.display()
        ),
        "Keys are in keyd (or a private file named below), never in this file.".to_string(),
    ];
    let dropped: Vec<&Note> = conv
        .notes
        .iter()
        .filter(|n| matches!(n.kind, NoteKind::Dropped(_)))
        .collect();
    if !dropped.is_empty() {
        header.push(String::new());
        header.push("Not carried over:".into());
        for n in dropped {
            if let NoteKind::Dropped(why) = &n.kind {
                header.push(format!("  {}: {why}", loc(n)));
            }
        }
    }
    conv.doc.render(&header)
}

pub fn report(input: &Path, output: Option<&Path>, notes: &[Note], keys: &[String]) -> String {
    let mut out = match output {
        Some(o) => format!("Converted {} into {}.\n", input.display(), o.display()),
        None => format!("Converted {}.\n", input.display()),
    };
    let carried: Vec<_> = notes
        .iter()
        .filter_map(|n| match &n.kind {
            NoteKind::Carried(to) => Some(format!("  {} -> {to}\n", loc(n))),
            _ => None,
        })
        .collect();
    let dropped: Vec<_> = notes
        .iter()
        .filter_map(|n| match &n.kind {
            NoteKind::Dropped(why) => Some(format!("  {}: {why}\n", loc(n))),
            _ => None,
        })
        .collect();
    if !carried.is_empty() {
        out.push_str("Carried over:\n");
        out.extend(carried);
    }
    if !dropped.is_empty() {
        out.push_str("Not carried over:\n");
        out.extend(dropped);
    }
    for k in keys {
        out.push_str(&format!("{k}\n"));
    }
    if let Some(o) = output {
        out.push_str(&format!(
            "Next: review {}, then run `edgesec config check {}`.\n",
            o.display(),
            o.display()
        ));
    }
    out
}
