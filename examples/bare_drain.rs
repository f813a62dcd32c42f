//! Baseline for bench/bench_dump_restore.py: the fastest read the server allows — a bare driver
//! cursor drain of every collection of a database, raw documents discarded, with the same number
//! of collections in flight as our dump. Usage: bare_drain <mongodb-uri> <db> [parallel]

use futures::{StreamExt, TryStreamExt};
use mongodb::bson::{doc, Document, RawDocumentBuf};

#[tokio::main]
async fn main() -> mongodb::error::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let client = mongodb::Client::with_uri_str(&args[1]).await?;
    let db = client.database(&args[2]);
    let parallel: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(4);
    let names = db.list_collection_names().await?;
    let started = std::time::Instant::now();
    let counts: Vec<(u64, u64)> = futures::stream::iter(names)
        .map(|name| {
            let coll = db.collection::<RawDocumentBuf>(&name);
            async move {
                let mut cursor = coll.find(doc! {}).await?;
                let (mut n, mut bytes) = (0u64, 0u64);
                while cursor.advance().await? {
                    n += 1;
                    bytes += cursor.current().as_bytes().len() as u64;
                }
                Ok::<_, mongodb::error::Error>((n, bytes))
            }
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    let _ = Document::new();
    let docs: u64 = counts.iter().map(|c| c.0).sum();
    let bytes: u64 = counts.iter().map(|c| c.1).sum();
    println!("{docs} {bytes} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
