//! Data loaders on the shipped fixtures (real prefixes of the files in `../shared/data`, see
//! `fixtures/README.md`), on malformed files with the exact message a user sees, and on the
//! full data sets when `../shared/data` is present.

use std::path::{Path, PathBuf};
use std::time::Instant;

use netc_grammar::Severity;
use netc_runtime::data::{DataError, Splits, load};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `../shared/data` beside the repository, when this machine has it.
fn shared() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} is absent", dir.display());
        None
    }
}

/// Check `src` (which must be free of errors) and load its only data item from `dir`.
fn load_in(src: &str, dir: &Path) -> Result<Splits, DataError> {
    let (file, analysis) = netc_compiler::analyze(src);
    let errors: Vec<_> = analysis
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{src}\n{errors:#?}");
    let info = analysis.data.values().next().expect("a data item");
    load(&file, info, dir)
}

fn load_ok(src: &str, dir: &Path) -> Splits {
    load_in(src, dir).unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(src: &str, dir: &Path) -> String {
    match load_in(src, dir) {
        Ok(_) => panic!("expected an error loading\n{src}"),
        Err(e) => e.to_string(),
    }
}

fn f32s(s: &Splits, split: &str, field: &str) -> Vec<f32> {
    let d = match split {
        "train" => &s.train,
        "val" => s.val.as_ref().unwrap(),
        _ => s.test.as_ref().unwrap(),
    };
    d.field(field).unwrap().values.as_f32().unwrap().to_vec()
}

fn i64s(s: &Splits, split: &str, field: &str) -> Vec<i64> {
    let d = match split {
        "train" => &s.train,
        "val" => s.val.as_ref().unwrap(),
        _ => s.test.as_ref().unwrap(),
    };
    d.field(field).unwrap().values.as_i64().unwrap().to_vec()
}

fn class_counts(labels: &[i64], classes: usize) -> Vec<usize> {
    let mut counts = vec![0; classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

const DIGITS: &str = r#"
data d {
  source csv("digits-30.csv", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  label:  class(10)
}
"#;

// ---------------------------------------------------------------- formats on the fixtures

#[test]
fn csv_digits_with_transforms() {
    let s = load_ok(DIGITS, &fixtures());
    assert_eq!(s.train.len, 30);
    assert!(s.val.is_none() && s.test.is_none() && s.vocab.is_none());
    assert_eq!(s.train.fields[0].name, "pixels");
    assert_eq!(s.train.fields[0].dims, vec![64]);
    assert_eq!(s.train.fields[1].dims, Vec::<usize>::new());
    // Row 1 of digits.csv: 0,0,5,13,9,1,0,0,...,0 (label 0).
    let px = f32s(&s, "train", "pixels");
    assert_eq!(
        &px[..6],
        &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0, 9.0 / 16.0, 1.0 / 16.0]
    );
    let labels = i64s(&s, "train", "label");
    assert_eq!(labels, (0..30).map(|i| i % 10).collect::<Vec<i64>>());
}

#[test]
fn csv_feature_shape_may_be_any_with_the_same_count() {
    let src = DIGITS.replace("f32[64]", "f32[1, 8, 8]");
    let s = load_ok(&src, &fixtures());
    assert_eq!(s.train.fields[0].dims, vec![1, 8, 8]);
}

#[test]
fn csv_header_line_is_skipped_when_declared() {
    let src = r#"
data d {
  source csv("iris-10.csv", header: true)
  x: f32[4] |> normalize(mean: 5, std: 2)
  label: class(3)
}
"#;
    let s = load_ok(src, &fixtures());
    assert_eq!(s.train.len, 10);
    // 5.1,3.5,1.4,0.2,0
    let x = f32s(&s, "train", "x");
    let want: Vec<f32> = [5.1f64, 3.5, 1.4, 0.2]
        .iter()
        .map(|v| ((v - 5.0) / 2.0) as f32)
        .collect();
    assert_eq!(&x[..4], &want[..]);
    assert_eq!(i64s(&s, "train", "label"), vec![0; 10]);
}

#[test]
fn split_is_seeded_and_disjoint() {
    let src = DIGITS.replace(
        "label:  class(10)",
        "label: class(10)\n  split val: 0.2, seed: 7",
    );
    let a = load_ok(&src, &fixtures());
    let b = load_ok(&src, &fixtures());
    assert_eq!(a, b);
    assert_eq!(a.train.len, 24);
    assert_eq!(a.val.as_ref().unwrap().len, 6);
    // Every sample lands in exactly one split: the labels 0..9 three times each.
    let mut all = i64s(&a, "train", "label");
    all.extend(i64s(&a, "val", "label"));
    assert_eq!(class_counts(&all, 10), vec![3; 10]);
    // Rows stay whole: pixels and label move together.
    let x = f32s(&a, "val", "pixels");
    assert_eq!(x.len(), 6 * 64);
    let other = load_ok(&src.replace("seed: 7", "seed: 8"), &fixtures());
    assert_ne!(i64s(&a, "val", "label"), i64s(&other, "val", "label"));
}

#[test]
fn idx_gzip_images_and_raw_labels() {
    let src = r#"
data mnist {
  source idx(images: "mnist-20-images-idx3-ubyte.gz", labels: "mnist-20-labels-idx1-ubyte")
  image: f32[1, 28, 28] |> scale(1 / 255)
  label: class(10)
}
"#;
    let s = load_ok(src, &fixtures());
    assert_eq!(s.train.len, 20);
    assert_eq!(s.train.fields[0].dims, vec![1, 28, 28]);
    assert_eq!(
        i64s(&s, "train", "label"),
        vec![5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9]
    );
    let px = f32s(&s, "train", "image");
    assert_eq!(px.len(), 20 * 784);
    assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
    // Image 0, row 5 holds the first ink of the famous "5": bytes 3, 18, 18, 18, 126 at columns 12..17.
    let row5 = &px[5 * 28..6 * 28];
    assert_eq!(row5[12], 3.0 / 255.0);
    assert_eq!(row5[16], 126.0 / 255.0);
    // The file's own shape and a flat vector are accepted too.
    for decl in ["f32[28, 28]", "f32[784]"] {
        let s2 = load_ok(&src.replace("f32[1, 28, 28]", decl), &fixtures());
        assert_eq!(f32s(&s2, "train", "image"), px);
    }
}

#[test]
fn cifar_records_and_one_hot_labels() {
    let src = r#"
data cifar {
  source cifar10("cifar10-10.bin")
  image: f32[3, 32, 32]
  label: class(10) |> one_hot(10)
}
"#;
    let s = load_ok(src, &fixtures());
    assert_eq!(s.train.len, 10);
    let px = f32s(&s, "train", "image");
    // The first record is a frog (label 6) whose pixel (0, 0) is RGB(59, 62, 63).
    assert_eq!((px[0], px[1024], px[2048]), (59.0, 62.0, 63.0));
    let one_hot = f32s(&s, "train", "label");
    assert_eq!(s.train.fields[1].dims, vec![10]);
    assert_eq!(&one_hot[..10], &[0., 0., 0., 0., 0., 0., 1., 0., 0., 0.]);
    let labels: Vec<usize> = one_hot
        .chunks(10)
        .map(|r| r.iter().position(|&v| v == 1.0).unwrap())
        .collect();
    assert_eq!(labels, vec![6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    // Scaled and normalized as lenet.net declares.
    let scaled = load_ok(
        &src.replace(
            "f32[3, 32, 32]",
            "f32[3, 32, 32] |> scale(1 / 255) |> normalize(mean: 0.5, std: 0.5)",
        ),
        &fixtures(),
    );
    assert_eq!(
        f32s(&scaled, "train", "image")[0],
        ((59.0 / 255.0 - 0.5) / 0.5) as f32
    );
}

#[test]
fn cifar_reads_a_list_of_files_in_order() {
    let dir = tmp();
    let bytes = std::fs::read(fixtures().join("cifar10-10.bin")).unwrap();
    std::fs::write(dir.path().join("a.bin"), &bytes[..4 * 3073]).unwrap();
    std::fs::write(dir.path().join("b.bin"), &bytes[4 * 3073..]).unwrap();
    let src = r#"
data cifar {
  source cifar10(["a.bin", "b.bin"])
  image: f32[3, 32, 32]
  label: class(10)
}
"#;
    let s = load_ok(src, dir.path());
    assert_eq!(
        i64s(&s, "train", "label"),
        vec![6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    );
}

const SENTENCES: &str = r#"
data reviews {
  source sentences(["sentences/imdb_labelled.txt", "sentences/yelp_labelled.txt",
                    "sentences/amazon_cells_labelled.txt"], vocab: 50, length: 8)
  tokens: i32[8]
  label:  f32[1]
}
"#;

#[test]
fn sentences_get_word_ids_and_float_labels() {
    let s = load_ok(SENTENCES, &fixtures());
    assert_eq!(s.train.len, 30);
    let vocab = s.vocab.as_ref().unwrap();
    assert_eq!(vocab.len(), 50);
    assert_eq!(&vocab[..2], &["<pad>", "<unk>"]);
    assert_eq!(vocab[2], "the");
    let tokens = i64s(&s, "train", "tokens");
    assert_eq!(tokens.len(), 30 * 8);
    // IMDb line 1: "A very, very, very slow-moving, aimless movie about a distressed, drifting young man.  \t0"
    let id = |w: &str| vocab.iter().position(|t| t == w).map_or(1, |i| i as i64);
    let want: Vec<i64> = [
        "a", "very", "very", "very", "slow", "moving", "aimless", "movie",
    ]
    .iter()
    .map(|w| id(w))
    .collect();
    assert_eq!(&tokens[..8], &want[..]);
    assert!(tokens.iter().all(|&t| (0..50).contains(&t)));
    let labels = f32s(&s, "train", "label");
    assert_eq!(s.train.fields[1].dims, vec![1]);
    assert_eq!(&labels[..3], &[0.0, 0.0, 0.0]);
    assert!(labels.iter().all(|&v| v == 0.0 || v == 1.0));
}

#[test]
fn sentence_vocabulary_comes_from_the_training_split_only() {
    let src = SENTENCES.replace("vocab: 50", "vocab: 100000").replace(
        "label:  f32[1]",
        "label: class(2)\n  split val: 0.5, seed: 3",
    );
    let s = load_ok(&src, &fixtures());
    let (train, val) = (&s.train, s.val.as_ref().unwrap());
    assert_eq!((train.len, val.len), (15, 15));
    let vocab = s.vocab.as_ref().unwrap();
    // With an unlimited vocabulary, every training word is known; validation has unknowns.
    let train_tokens = train.field("tokens").unwrap().values.as_i64().unwrap();
    let val_tokens = val.field("tokens").unwrap().values.as_i64().unwrap();
    assert!(!train_tokens.contains(&1));
    assert!(val_tokens.contains(&1));
    assert!(vocab.len() < 300);
}

#[test]
fn text_windows_with_next_character_targets() {
    let src = r#"
data corpus {
  source text("shakespeare-2000.txt", length: 32)
  x: i32[32]
  target: i64[32]
  split val: 0.1, seed: 0
}
"#;
    let s = load_ok(src, &fixtures());
    let vocab = s.vocab.as_ref().unwrap();
    let text = std::fs::read_to_string(fixtures().join("shakespeare-2000.txt")).unwrap();
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    assert_eq!(
        vocab,
        &chars.iter().map(char::to_string).collect::<Vec<_>>()
    );
    // The last 200 characters are validation: 1800 train characters make 56 windows.
    assert_eq!(s.train.len, (1800 - 1) / 32);
    assert_eq!(s.val.as_ref().unwrap().len, (200 - 1) / 32);
    let x = i64s(&s, "train", "x");
    let y = i64s(&s, "train", "target");
    let decode =
        |ids: &[i64]| -> String { ids.iter().map(|&i| vocab[i as usize].as_str()).collect() };
    assert_eq!(decode(&x[..32]), &text[..32]);
    assert_eq!(decode(&y[..32]), &text[1..33]);
    assert_eq!(decode(&x[32..64]), &text[32..64]);
    let vx = i64s(&s, "val", "x");
    assert_eq!(decode(&vx[..32]), &text[1800..1832]);
}

#[test]
fn npy_features_and_labels() {
    let src = r#"
data d {
  source npy(features: "digits-30-x.npy", labels: "digits-30-y.npy")
  pixels: f32[64] |> scale(1 / 16)
  label: class(10)
}
"#;
    let csv = load_ok(DIGITS, &fixtures());
    let s = load_ok(src, &fixtures());
    assert_eq!(s.train, csv.train);
    let f4 = load_ok(
        &src.replace("digits-30-x.npy", "digits-30-x-f4.npy"),
        &fixtures(),
    );
    assert_eq!(f4.train, csv.train);
    for decl in ["f32[8, 8]", "f32[1, 8, 8]"] {
        let s2 = load_ok(&src.replace("f32[64]", decl), &fixtures());
        assert_eq!(f32s(&s2, "train", "pixels"), f32s(&csv, "train", "pixels"));
    }
}

#[test]
fn test_source_is_loaded_separately() {
    let src = DIGITS.replace(
        "label:  class(10)",
        "label: class(10)\n  test csv(\"digits-30.csv\", label: -1)",
    );
    let s = load_ok(&src, &fixtures());
    assert_eq!(s.test.as_ref().unwrap(), &s.train);
}

#[test]
fn the_mlp_example_loads_from_the_repository() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let src = std::fs::read_to_string(examples.join("mlp.net")).unwrap();
    let s = load_ok(&src, &examples);
    let (train, val) = (&s.train, s.val.as_ref().unwrap());
    assert_eq!(val.len, 180); // round(0.1 × 1797)
    assert_eq!(train.len, 1797 - 180);
    let px = train.field("pixels").unwrap().values.as_f32().unwrap();
    assert!(px.iter().all(|v| (0.0..=1.0).contains(v)));
    // Batches for training drop the partial batch of 1617 % 32 = 17 samples.
    assert_eq!(train.batches(32, Some(1), 0).len(), 1617 / 32);
    let real: usize = val.batches_padded(32).map(|b| b.real).sum();
    assert_eq!(real, 180);
}

// ---------------------------------------------------------------- malformed files

/// The MNIST fixture, decompressed.
fn mnist_images() -> Vec<u8> {
    gunzip(&std::fs::read(fixtures().join("mnist-20-images-idx3-ubyte.gz")).unwrap())
}

fn mnist_labels() -> Vec<u8> {
    std::fs::read(fixtures().join("mnist-20-labels-idx1-ubyte")).unwrap()
}

const MNIST: &str = r#"
data mnist {
  source idx(images: "images", labels: "labels")
  image: f32[1, 28, 28] |> scale(1 / 255)
  label: class(10)
}
"#;

/// Write an images and a labels file into a fresh directory and load [`MNIST`] from it.
fn mnist_err(images: &[u8], labels: &[u8]) -> (String, tempfile::TempDir) {
    let dir = tmp();
    std::fs::write(dir.path().join("images"), images).unwrap();
    std::fs::write(dir.path().join("labels"), labels).unwrap();
    (load_err(MNIST, dir.path()), dir)
}

#[test]
fn truncated_idx() {
    let images = mnist_images();
    let (e, dir) = mnist_err(&images[..1000], &mnist_labels());
    let p = dir.path().join("images");
    assert_eq!(
        e,
        format!(
            "{}: truncated: the header declares 20 images of 28x28, which need 15696 bytes, but the file has 1000 bytes",
            p.display()
        )
    );
    // The same, compressed: sizes are of the decompressed data.
    let (e, dir) = mnist_err(&gzip(&images[..1000]), &mnist_labels());
    assert_eq!(
        e,
        format!(
            "{}: truncated: the header declares 20 images of 28x28, which need 15696 bytes, but the file has 1000 bytes once decompressed",
            dir.path().join("images").display()
        )
    );
    // A header cut short.
    let (e, dir) = mnist_err(&images[..10], &mnist_labels());
    assert_eq!(
        e,
        format!(
            "{}: truncated: the header of 3 dimensions needs 16 bytes, but the file has 10",
            dir.path().join("images").display()
        )
    );
    // Trailing bytes are not silently ignored either.
    let mut longer = images.clone();
    longer.extend_from_slice(&[0; 4]);
    let (e, dir) = mnist_err(&longer, &mnist_labels());
    assert_eq!(
        e,
        format!(
            "{}: the header declares 20 images of 28x28, which need 15696 bytes, but the file has 15700 bytes (4 more)",
            dir.path().join("images").display()
        )
    );
}

#[test]
fn truncated_gzip_stream() {
    let gz = std::fs::read(fixtures().join("mnist-20-images-idx3-ubyte.gz")).unwrap();
    let (e, dir) = mnist_err(&gz[..gz.len() / 2], &mnist_labels());
    assert_eq!(
        e,
        format!(
            "{}: not valid gzip data (truncated or corrupt): incomplete deflate stream",
            dir.path().join("images").display()
        )
    );
}

#[test]
fn wrong_idx_magic() {
    let mut images = mnist_images();
    images[..4].copy_from_slice(b"PK\x03\x04");
    let (e, dir) = mnist_err(&images, &mnist_labels());
    assert_eq!(
        e,
        format!(
            "{}: not an IDX file: the magic number is 0x504b0304, expected 0x00000803 (unsigned bytes, 3 dimensions) for images",
            dir.path().join("images").display()
        )
    );
    // Images and labels swapped.
    let (e, dir) = mnist_err(&mnist_labels(), &mnist_images());
    assert_eq!(
        e,
        format!(
            "{}: expected an IDX images file (magic 0x00000803, 3 dimensions), found 1 dimension (magic 0x00000801)",
            dir.path().join("images").display()
        )
    );
}

#[test]
fn idx_counts_must_agree() {
    let mut labels = mnist_labels();
    labels.pop();
    labels[7] = 19;
    let (e, dir) = mnist_err(&mnist_images(), &labels);
    assert_eq!(
        e,
        format!(
            "{}: the file has 20 images, but {} has 19 labels",
            dir.path().join("images").display(),
            dir.path().join("labels").display()
        )
    );
}

#[test]
fn idx_shape_mismatch() {
    let src = MNIST.replace("f32[1, 28, 28]", "f32[3, 28, 28]");
    let dir = tmp();
    std::fs::write(dir.path().join("images"), mnist_images()).unwrap();
    std::fs::write(dir.path().join("labels"), mnist_labels()).unwrap();
    assert_eq!(
        load_err(&src, dir.path()),
        format!(
            "{}: the images are 28x28, but field `image` is declared [3, 28, 28] (expected [28, 28], [1, 28, 28] or [784])",
            dir.path().join("images").display()
        )
    );
}

#[test]
fn idx_label_out_of_range() {
    let dir = tmp();
    std::fs::write(dir.path().join("images"), mnist_images()).unwrap();
    std::fs::write(dir.path().join("labels"), mnist_labels()).unwrap();
    // The first label is 5: the first one outside class(5).
    let src = MNIST.replace("class(10)", "class(5)");
    assert_eq!(
        load_err(&src, dir.path()),
        format!(
            "{}: byte 8 (sample 0): label 5 is out of range for field `label`, declared class(5) (expected 0 to 4)",
            dir.path().join("labels").display()
        )
    );
}

#[test]
fn cifar_size_not_a_multiple_of_records() {
    let dir = tmp();
    let bytes = std::fs::read(fixtures().join("cifar10-10.bin")).unwrap();
    std::fs::write(dir.path().join("c.bin"), &bytes[..3 * 3073 + 100]).unwrap();
    let src = r#"
data cifar {
  source cifar10("c.bin")
  image: f32[3, 32, 32] |> scale(1 / 255)
  label: class(10)
}
"#;
    assert_eq!(
        load_err(src, dir.path()),
        format!(
            "{}: 9319 bytes is not a whole number of 3073-byte CIFAR-10 records (a label byte and 3x32x32 pixels): 3 records and 100 bytes left over",
            dir.path().join("c.bin").display()
        )
    );
    std::fs::write(dir.path().join("c.bin"), b"").unwrap();
    assert_eq!(
        load_err(src, dir.path()),
        format!(
            "{}: the file is empty (expected 3073-byte CIFAR-10 records)",
            dir.path().join("c.bin").display()
        )
    );
    // A label byte past 9.
    let mut bad = bytes[..2 * 3073].to_vec();
    bad[3073] = 12;
    std::fs::write(dir.path().join("c.bin"), bad).unwrap();
    assert_eq!(
        load_err(src, dir.path()),
        format!(
            "{}: byte 3073 (sample 1): label 12 is out of range for field `label`, declared class(10) (expected 0 to 9)",
            dir.path().join("c.bin").display()
        )
    );
}

fn csv_err(text: &str, src: &str) -> (String, tempfile::TempDir) {
    let dir = tmp();
    std::fs::write(dir.path().join("t.csv"), text).unwrap();
    (load_err(src, dir.path()), dir)
}

const SMALL_CSV: &str = r#"
data d {
  source csv("t.csv")
  x: f32[3]
  label: class(3)
}
"#;

#[test]
fn csv_wrong_number_of_columns() {
    let (e, dir) = csv_err("1,2,3,0\n4,5,6,1\n7,8,2\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 3: expected 4 columns like line 1, found 3",
            dir.path().join("t.csv").display()
        )
    );
}

#[test]
fn csv_not_a_number() {
    let (e, dir) = csv_err("1,2,3,0\n\n4,x5,6,1\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 3, column 2: expected a number, found `x5`",
            dir.path().join("t.csv").display()
        )
    );
    let (e, dir) = csv_err("1,2,3,0\n4,,6,1\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 2, column 2: expected a number, found an empty field",
            dir.path().join("t.csv").display()
        )
    );
    let (e, dir) = csv_err("1,nan,3,0\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 1, column 2: expected a number, found `nan` (missing and infinite values are not supported)",
            dir.path().join("t.csv").display()
        )
    );
    // sklearn's iris header, read without `header: true`.
    let iris = r#"
data d {
  source csv("iris-10.csv")
  x: f32[4]
  label: class(3)
}
"#;
    assert_eq!(
        load_err(iris, &fixtures()),
        format!(
            "{}: line 1, column 3: expected a number, found `setosa` (if the first line holds column names, write `header: true`)",
            fixtures().join("iris-10.csv").display()
        )
    );
}

#[test]
fn csv_label_errors() {
    let (e, dir) = csv_err("1,2,3,0\n4,5,6,2\n7,8,9,3\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 3: label 3 is out of range for field `label`, declared class(3) (expected 0 to 2)",
            dir.path().join("t.csv").display()
        )
    );
    let (e, dir) = csv_err("1,2,3,0\n4,5,6,1.5\n", SMALL_CSV);
    assert_eq!(
        e,
        format!(
            "{}: line 2: label 1.5 is not a whole number, but field `label` is declared class(3)",
            dir.path().join("t.csv").display()
        )
    );
    let (e, dir) = csv_err(
        "1,2,3,0\n",
        &SMALL_CSV.replace("csv(\"t.csv\")", "csv(\"t.csv\", label: 7)"),
    );
    assert_eq!(
        e,
        format!(
            "{}: line 1: the label column is 7, but the row has 4 columns (0 to 3)",
            dir.path().join("t.csv").display()
        )
    );
    // The real digits fixture against too few classes: the first 5 is on line 6.
    assert_eq!(
        load_err(&DIGITS.replace("class(10)", "class(5)"), &fixtures()),
        format!(
            "{}: line 6: label 5 is out of range for field `label`, declared class(5) (expected 0 to 4)",
            fixtures().join("digits-30.csv").display()
        )
    );
}

#[test]
fn csv_width_mismatch() {
    assert_eq!(
        load_err(&DIGITS.replace("f32[64]", "f32[60]"), &fixtures()),
        format!(
            "{}: rows have 64 feature columns (65 columns less the label), but field `pixels` is declared [60], which holds 60 values",
            fixtures().join("digits-30.csv").display()
        )
    );
    let (e, dir) = csv_err("\n\n", SMALL_CSV);
    assert_eq!(
        e,
        format!("{}: no data rows", dir.path().join("t.csv").display())
    );
}

#[test]
fn missing_file_names_the_resolved_path() {
    let dir = tmp();
    let src = DIGITS.replace("digits-30.csv", "data/nope.csv");
    assert_eq!(
        load_err(&src, dir.path()),
        format!(
            "{}: no such file (paths in a `.net` file are relative to its directory)",
            dir.path().join("data/nope.csv").display()
        )
    );
}

const ONE_FILE_SENTENCES: &str = r#"
data reviews {
  source sentences("s.txt", vocab: 100, length: 8)
  tokens: i32[8]
  label: class(2)
}
"#;

#[test]
fn sentence_line_without_a_tab() {
    let dir = tmp();
    std::fs::write(
        dir.path().join("s.txt"),
        "Great phone.\t1\nBad battery, 0\n",
    )
    .unwrap();
    assert_eq!(
        load_err(ONE_FILE_SENTENCES, dir.path()),
        format!(
            "{}: line 2: expected `sentence<TAB>label`, found no tab",
            dir.path().join("s.txt").display()
        )
    );
    std::fs::write(dir.path().join("s.txt"), "Great phone.\tyes\n").unwrap();
    assert_eq!(
        load_err(ONE_FILE_SENTENCES, dir.path()),
        format!(
            "{}: line 1: expected an integer label after the last tab, found `yes`",
            dir.path().join("s.txt").display()
        )
    );
    std::fs::write(dir.path().join("s.txt"), "Great\tphone.\t2\n").unwrap();
    assert_eq!(
        load_err(ONE_FILE_SENTENCES, dir.path()),
        format!(
            "{}: line 1: label 2 is out of range for field `label`, declared class(2) (expected 0 to 1)",
            dir.path().join("s.txt").display()
        )
    );
}

#[test]
fn empty_corpora() {
    let dir = tmp();
    std::fs::write(dir.path().join("s.txt"), "\n\n").unwrap();
    assert_eq!(
        load_err(ONE_FILE_SENTENCES, dir.path()),
        format!(
            "{}: no sentences (expected lines of `sentence<TAB>label`)",
            dir.path().join("s.txt").display()
        )
    );
    let text = r#"
data corpus {
  source text("t.txt", length: 16)
  x: i32[16]
  target: i64[16]
}
"#;
    std::fs::write(dir.path().join("t.txt"), "").unwrap();
    assert_eq!(
        load_err(text, dir.path()),
        format!(
            "{}: the corpus is empty",
            dir.path().join("t.txt").display()
        )
    );
    std::fs::write(dir.path().join("t.txt"), "To be or not").unwrap();
    assert_eq!(
        load_err(text, dir.path()),
        format!(
            "{}: the corpus has 12 characters, too few for one sample of 16 characters and the character after it",
            dir.path().join("t.txt").display()
        )
    );
}

#[test]
fn text_that_is_not_utf8() {
    let dir = tmp();
    std::fs::write(dir.path().join("s.txt"), b"fine\t1\nbad \xff byte\t0\n").unwrap();
    assert_eq!(
        load_err(ONE_FILE_SENTENCES, dir.path()),
        format!(
            "{}: line 2: not UTF-8 text (invalid byte at offset 11)",
            dir.path().join("s.txt").display()
        )
    );
}

#[test]
fn malformed_npy() {
    let dir = tmp();
    let x = std::fs::read(fixtures().join("digits-30-x.npy")).unwrap();
    std::fs::write(dir.path().join("x.npy"), &x[..x.len() - 64]).unwrap();
    std::fs::copy(fixtures().join("digits-30-y.npy"), dir.path().join("y.npy")).unwrap();
    let src = r#"
data d {
  source npy(features: "x.npy", labels: "y.npy")
  pixels: f32[64]
  label: class(10)
}
"#;
    assert_eq!(
        load_err(src, dir.path()),
        format!(
            "{}: truncated: the header declares shape (30, 8, 8) of `|u1`, which needs 2048 bytes, but the file has 1984",
            dir.path().join("x.npy").display()
        )
    );
    std::fs::write(dir.path().join("x.npy"), b"1,2,3\n").unwrap();
    assert_eq!(
        load_err(src, dir.path()),
        format!(
            "{}: not a .npy file: expected the magic bytes 93 4e 55 4d 50 59 (\\x93NUMPY), found 31 2c 32 2c 33 0a",
            dir.path().join("x.npy").display()
        )
    );
}

#[test]
fn a_label_field_needs_labels() {
    let src = r#"
data d {
  source npy(features: "digits-30-x.npy")
  pixels: f32[64]
  label: class(10)
}
"#;
    assert_eq!(
        load_err(src, &fixtures()),
        "field `label` receives labels, but `npy(...)` has none (give it a `labels` file)"
    );
    // Without a label field, features alone load.
    let s = load_ok(&src.replace("  label: class(10)\n", ""), &fixtures());
    assert_eq!(s.train.len, 30);
    assert_eq!(s.train.fields.len(), 1);
}

#[test]
fn a_split_must_leave_samples_on_both_sides() {
    let src = DIGITS.replace(
        "label:  class(10)",
        "label: class(10)\n  split val: 0.01, seed: 1",
    );
    assert_eq!(
        load_err(&src, &fixtures()),
        "data `d`: `split val: 0.01` of 30 samples leaves 0 for validation and 30 for training; both need at least one"
    );
}

// ---------------------------------------------------------------- the real data sets

#[test]
fn real_digits_csv() {
    let Some(shared) = shared() else { return };
    let src = r#"
data digits {
  source csv("sklearn/digits.csv", label: 64)
  pixels: f32[64] |> scale(1 / 16)
  label: class(10)
}
"#;
    let t = Instant::now();
    let s = load_ok(src, &shared);
    println!("digits.csv: {:?}", t.elapsed());
    assert_eq!(s.train.len, 1797);
    assert_eq!(
        class_counts(&i64s(&s, "train", "label"), 10),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
}

#[test]
fn real_sklearn_csvs_with_headers() {
    let Some(shared) = shared() else { return };
    for (file, width, classes, counts) in [
        ("iris.csv", 4, 3, vec![50, 50, 50]),
        ("wine_data.csv", 13, 3, vec![59, 71, 48]),
        ("breast_cancer.csv", 30, 2, vec![212, 357]),
    ] {
        let src = format!(
            "data d {{\n  source csv(\"sklearn/{file}\", header: true)\n  x: f32[{width}]\n  label: class({classes})\n}}\n"
        );
        let s = load_ok(&src, &shared);
        assert_eq!(
            class_counts(&i64s(&s, "train", "label"), classes),
            counts,
            "{file}"
        );
    }
}

#[test]
fn real_mnist() {
    let Some(shared) = shared() else { return };
    let src = r#"
data mnist {
  source idx(images: "mnist/train-images-idx3-ubyte.gz", labels: "mnist/train-labels-idx1-ubyte.gz")
  test   idx(images: "mnist/t10k-images-idx3-ubyte.gz", labels: "mnist/t10k-labels-idx1-ubyte.gz")
  image: f32[1, 28, 28] |> scale(1 / 255)
  label: class(10)
}
"#;
    let t = Instant::now();
    let s = load_ok(src, &shared);
    println!("MNIST train + test: {:?}", t.elapsed());
    assert_eq!(s.train.len, 60000);
    assert_eq!(
        class_counts(&i64s(&s, "train", "label"), 10),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    let test = s.test.as_ref().unwrap();
    assert_eq!(test.len, 10000);
    assert_eq!(
        class_counts(&i64s(&s, "test", "label"), 10),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The README's mean pixel, 33.3184 on the 0-255 scale.
    let px = f32s(&s, "train", "image");
    let mean = px.iter().map(|&v| f64::from(v)).sum::<f64>() / px.len() as f64 * 255.0;
    assert!((mean - 33.3184).abs() < 1e-3, "{mean}");
}

#[test]
fn real_cifar() {
    let Some(shared) = shared() else { return };
    let src = r#"
data cifar {
  source cifar10("cifar10/data_batch_1.first4000.bin")
  test   cifar10("cifar10/test_batch.first1000.bin")
  image: f32[3, 32, 32]
  label: class(10)
}
"#;
    let s = load_ok(src, &shared);
    assert_eq!(s.train.len, 4000);
    let px = f32s(&s, "train", "image");
    assert_eq!(i64s(&s, "train", "label")[0], 6);
    assert_eq!((px[0], px[1024], px[2048]), (59.0, 62.0, 63.0));
    assert_eq!(
        class_counts(&i64s(&s, "train", "label"), 10),
        vec![396, 366, 420, 384, 422, 393, 414, 385, 407, 413]
    );
    let tpx = f32s(&s, "test", "image");
    assert_eq!(i64s(&s, "test", "label")[0], 3);
    assert_eq!((tpx[0], tpx[1024], tpx[2048]), (158.0, 112.0, 49.0));
}

#[test]
fn real_sentiment_sentences() {
    if shared().is_none() {
        return;
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let src = std::fs::read_to_string(examples.join("sentiment_lstm.net")).unwrap();
    let s = load_ok(&src, &examples);
    let (train, val) = (&s.train, s.val.as_ref().unwrap());
    assert_eq!(train.len + val.len, 3000);
    assert_eq!(val.len, 600);
    // The 2400 training sentences have fewer than 4998 distinct words: all are in.
    assert_eq!(s.vocab.as_ref().unwrap().len(), 4627);
    let mut labels: Vec<f32> = f32s(&s, "train", "label");
    labels.extend(f32s(&s, "val", "label"));
    assert_eq!(labels.iter().filter(|&&v| v == 1.0).count(), 1500);
    assert_eq!(labels.iter().filter(|&&v| v == 0.0).count(), 1500);
    // Without a split, all three files in order: IMDb first.
    let without_split = src.replace("split val: 0.2, seed: 1", "");
    assert_ne!(
        without_split, src,
        "the example's `split` line changed; update this test"
    );
    let all = load_ok(&without_split, &examples);
    assert_eq!(all.train.len, 3000);
}

#[test]
fn real_tiny_shakespeare() {
    let Some(shared) = shared() else { return };
    let src = r#"
data corpus {
  source text("tinyshakespeare/input.txt", length: 128)
  x: i32[128]
  target: i64[128]
  split val: 0.1, seed: 0
}
"#;
    let s = load_ok(src, &shared);
    assert_eq!(s.vocab.as_ref().unwrap().len(), 65);
    let n = 1_115_394usize;
    let n_val = (n as f64 * 0.1).round() as usize;
    assert_eq!(s.train.len, (n - n_val - 1) / 128);
    assert_eq!(s.val.as_ref().unwrap().len, (n_val - 1) / 128);
}

#[test]
fn real_examples_load() {
    if shared().is_none() {
        return;
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["lenet.net", "dcgan.net", "transformer.net"] {
        let src = std::fs::read_to_string(examples.join(name)).unwrap();
        let s = load_ok(&src, &examples);
        assert!(s.train.len > 0, "{name}");
    }
}
