//! `gen-corpus OUT [LINES] [SEED]`: write the wordcount benchmark corpus.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).map(String::as_str).unwrap_or("corpus.txt");
    let lines = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(42);
    let f = std::fs::File::create(out).unwrap_or_else(|e| {
        eprintln!("error: cannot create {out}: {e}");
        std::process::exit(2)
    });
    let mut w = std::io::BufWriter::new(f);
    let s = wasmbeam_bench::corpus(&mut w, lines, seed).unwrap_or_else(|e| {
        eprintln!("error: cannot write {out}: {e}");
        std::process::exit(1)
    });
    drop(w);
    println!(
        "file={out} lines={lines} bytes={} total_words={} distinct_words={} sha256={}",
        s.bytes, s.words, s.distinct, s.sha256
    );
}
