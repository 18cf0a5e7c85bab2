//! `sweep pack add|list|rm`: osquery-format packs under `/sweep/packs/`.
//! `add` reads a pack file as osquery would (comments, string intervals and
//! all; see [`crate::packfile`]), guards every query and discovery query, and
//! refuses the whole pack if one is refused: a pack is installed whole or
//! not at all. Adding a pack under an existing name replaces it.
//!
//! Exit codes: 0 on success, 1 on an error (an unreadable pack file, `rm` of
//! an unknown name), 2 when the guard refuses a query (nothing is written).

use std::io::Write;

use sweep_proto::signing::Kind;
use sweep_proto::time::unix_now;
use sweep_proto::{Keyspace, Pack};

use crate::cli::{ListArgs, PackAddArgs, PackCommand, RmArgs};
use crate::config::Settings;
use crate::output::{Format, RowWriter};
use crate::{names, operator, packfile, render, ControllerError};

pub async fn run(settings: &Settings, command: PackCommand) -> Result<u8, ControllerError> {
    match command {
        PackCommand::Add(args) => add(settings, args).await,
        PackCommand::List(args) => list(settings, args).await,
        PackCommand::Rm(args) => rm(settings, args).await,
    }
}

async fn add(settings: &Settings, args: PackAddArgs) -> Result<u8, ControllerError> {
    let path = args.file.display().to_string();
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    names::check("pack", &name).map_err(|e| match args.name {
        Some(_) => e,
        // The name came from the file: say so, and how to choose another.
        None => ControllerError::Usage(format!("{e} (taken from the file name; pass --name)")),
    })?;
    let text = read_bounded(&args.file).map_err(|reason| ControllerError::PackFile {
        path: path.clone(),
        line: None,
        reason,
    })?;
    let parsed = packfile::parse(&path, &text)?;
    for note in &parsed.notes {
        eprintln!("note: {path}: {note}");
    }
    if let Some((what, e)) = parsed.refused() {
        eprintln!("Error: pack {name}: {what}: {e}");
        eprintln!("nothing was written: a pack is installed whole or not at all");
        return Ok(2);
    }
    if let Some(why) = args.targets.refused_discovery() {
        eprintln!("Error: {why}");
        return Ok(2);
    }
    let targets = args.targets.targets()?;
    let signer = operator::signer(settings, "pack")?;
    let mut pack = Pack {
        name,
        discovery: parsed.discovery,
        platform: parsed.platform,
        targets,
        queries: parsed.queries,
        issuer: operator::issuer(),
        issued_at: unix_now(),
        version: 0,
    };
    let keys = settings.keyspace();
    let store = settings.store().await?;
    let key = keys.pack(&pack.name);
    pack.version = operator::next_version(&store, &key).await?;
    let stored = operator::seal(signer.as_ref(), Kind::Pack, pack.to_json());
    let replaced = store.put(&key, stored.to_json().as_bytes()).await?;
    println!(
        "pack {} {}: {} quer{}, {} discovery quer{}, targets {}{}",
        pack.name,
        if replaced { "replaced" } else { "added" },
        pack.queries.len(),
        plural_y(pack.queries.len()),
        pack.discovery.len(),
        plural_y(pack.discovery.len()),
        render::targets(&pack.targets),
        if stored.signature.is_some() {
            ", signed"
        } else {
            ", unsigned"
        }
    );
    println!("rows are named {}", Pack::query_name(&pack.name, "<query>"));
    Ok(0)
}

/// The largest pack file read. osquery's biggest packs are tens of KiB; this
/// keeps `sweep pack add /dev/zero` (or a log file by mistake) from eating
/// the operator's memory.
const MAX_PACK_BYTES: u64 = 4 * 1024 * 1024;

fn read_bounded(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_PACK_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PACK_BYTES {
        return Err(format!(
            "larger than {} MiB; not a pack file",
            MAX_PACK_BYTES / (1024 * 1024)
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

fn plural_y(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

async fn list(settings: &Settings, args: ListArgs) -> Result<u8, ControllerError> {
    let keys = settings.keyspace();
    let store = settings.store().await?;
    let dir = keys.packs();
    let entries = store.list(&dir).await?;
    let mut packs = Vec::new();
    for entry in &entries {
        let key = entry.key.as_str();
        if Keyspace::leaf(&dir, key).is_none() {
            continue;
        }
        match operator::body(&entry.value).and_then(|b| Ok(Pack::from_json(b.as_bytes())?)) {
            Ok(p) => packs.push(p),
            // One bad value must not hide the others.
            Err(e) => eprintln!(
                "warning: {}: {}",
                sweep_proto::text::printable(key),
                sweep_proto::text::printable(&e.to_string())
            ),
        }
    }
    packs.sort_by(|a, b| a.name.cmp(&b.name));
    let format = args.format.format();
    let columns = [
        "name",
        "queries",
        "discovery",
        "targets",
        "platform",
        "issuer",
    ];
    let mut rows = RowWriter::new(std::io::stdout().lock(), format, &columns)?;
    for p in &packs {
        let cells = vec![
            p.name.clone(),
            p.queries.len().to_string(),
            p.discovery.len().to_string(),
            render::targets(&p.targets),
            p.platform.clone().unwrap_or_else(|| "all".into()),
            p.issuer.clone(),
        ];
        // json and ndjson: the pack as stored.
        rows.row_with(cells, p.to_json())?;
    }
    rows.finish()?;
    if format == Format::Table {
        writeln!(std::io::stdout().lock(), "{} pack(s)", packs.len())?;
    }
    Ok(0)
}

async fn rm(settings: &Settings, args: RmArgs) -> Result<u8, ControllerError> {
    names::check("pack", &args.name)?;
    let keys = settings.keyspace();
    let store = settings.store().await?;
    if !store.delete(&keys.pack(&args.name)).await? {
        return Err(ControllerError::NotFound {
            what: "pack",
            name: args.name,
        });
    }
    println!("pack {} removed", args.name);
    Ok(0)
}
