//! `native-wordcount INPUT OUTPUT`: the single-threaded Rust reference:
//! read, split into words (letters, digits, apostrophes), count in a
//! HashMap, write `word: count` lines.
use std::collections::HashMap;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: native-wordcount INPUT OUTPUT");
        std::process::exit(2)
    };
    let text = std::fs::read_to_string(input).expect("read input");
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for w in text
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(w).or_insert(0) += 1;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(output).expect("create output"));
    for (w, n) in counts {
        writeln!(out, "{w}: {n}").expect("write");
    }
}
