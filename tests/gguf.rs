//! GGUF reader and writer: round trips, cross-checks against candle's own GGUF reader and
//! writer, the Phi-3 vocab file, and a corruption corpus run under an allocation meter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufReader, Cursor, Seek, SeekFrom, Write};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use mimir::engine::gguf::{write_gguf, GgufError, GgufFile, Value, WRITER_LABEL};

type TestResult = Result<(), Box<dyn Error>>;
type Metadata = Vec<(String, Value)>;

// ---------------------------------------------------------------------------------------------
// Allocation meter: records the largest single allocation made by the current thread while
// armed, so a test can show that hostile counts never turn into huge allocations.

struct Meter;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    let armed = ARMED.try_with(Cell::get).unwrap_or(false);
    if armed {
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    }
}

// SAFETY: forwards every call to `System` unchanged; only reads thread-locals on the side.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result with the largest single allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    ARMED.with(|armed| armed.set(true));
    let out = f();
    ARMED.with(|armed| armed.set(false));
    (out, LARGEST.with(Cell::get))
}

/// Allocations that do not depend on the file size (maps, error messages).
const ALLOCATION_SLACK: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// splitmix64: a tiny deterministic PRNG, so fixtures and fuzzing are reproducible.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn entry(key: &str, value: Value) -> (String, Value) {
    (key.to_owned(), value)
}

/// Metadata with one entry of every value type, including string arrays and nested arrays.
fn every_value_type() -> Metadata {
    use Value::*;
    vec![
        entry("general.architecture", String("mimir-test".into())),
        entry("test.u8", U8(200)),
        entry("test.i8", I8(-100)),
        entry("test.u16", U16(60_000)),
        entry("test.i16", I16(-30_000)),
        entry("test.u32", U32(4_000_000_000)),
        entry("test.i32", I32(-2_000_000_000)),
        entry("test.u64", U64(u64::MAX)),
        entry("test.i64", I64(i64::MIN)),
        entry("test.f32", F32(-1.5e-7)),
        entry("test.f64", F64(std::f64::consts::PI)),
        entry("test.true", Bool(true)),
        entry("test.false", Bool(false)),
        entry("test.string", String("héllo, wörld ✓".into())),
        entry("test.empty_string", String(std::string::String::new())),
        entry(
            "test.strings",
            Array(vec![
                String("<s>".into()),
                String("".into()),
                String("Ġthe".into()),
            ]),
        ),
        entry(
            "test.nested_u32",
            Array(vec![
                Array(vec![U32(1), U32(2)]),
                Array(vec![U32(3)]),
                Array(vec![]),
            ]),
        ),
        entry("test.f32s", Array(vec![F32(0.5), F32(-2.0), F32(1e30)])),
        entry("test.i32s", Array(vec![I32(3), I32(-7), I32(i32::MAX)])),
        entry("test.bools", Array(vec![Bool(true), Bool(false)])),
        entry("test.u8s", Array(vec![U8(0), U8(255)])),
        entry("test.empty_array", Array(vec![])),
    ]
}

/// Quantized tensors of many types and ranks from deterministic data.
fn tensor_fixtures() -> Result<Vec<(String, QTensor)>, Box<dyn Error>> {
    let specs: [(&str, GgmlDType, &[usize]); 12] = [
        ("f32.odd", GgmlDType::F32, &[3, 5]),
        ("f32.rank1", GgmlDType::F32, &[7]),
        ("f32.rank4", GgmlDType::F32, &[2, 3, 1, 4]),
        ("f16", GgmlDType::F16, &[4, 32]),
        ("bf16", GgmlDType::BF16, &[2, 64]),
        ("q4_0", GgmlDType::Q4_0, &[8, 256]),
        ("q4_1", GgmlDType::Q4_1, &[8, 256]),
        ("q8_0", GgmlDType::Q8_0, &[8, 256]),
        ("q4k", GgmlDType::Q4K, &[8, 256]),
        ("q5k", GgmlDType::Q5K, &[8, 256]),
        ("q6k", GgmlDType::Q6K, &[8, 256]),
        ("q5_0.rank3", GgmlDType::Q5_0, &[2, 2, 64]),
    ];
    let mut rng = Rng(42);
    let mut tensors = Vec::new();
    for (name, dtype, shape) in specs {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.unit()).collect();
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu)?;
        tensors.push((format!("tensor.{name}"), QTensor::quantize(&tensor, dtype)?));
    }
    Ok(tensors)
}

fn as_refs(tensors: &[(String, QTensor)]) -> Vec<(String, &QTensor)> {
    tensors.iter().map(|(n, t)| (n.clone(), t)).collect()
}

fn write_to_vec(
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<Vec<u8>, GgufError> {
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, metadata, &as_refs(tensors))?;
    Ok(bytes)
}

fn read(bytes: &[u8], source: &str) -> Result<GgufFile, GgufError> {
    GgufFile::read(&mut Cursor::new(bytes), source)
}

fn dequantized(tensor: &QTensor) -> candle_core::Result<Vec<f32>> {
    tensor.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()
}

/// Converts candle's metadata value into ours, to compare the two readers.
fn from_candle(value: &gguf_file::Value) -> Value {
    use gguf_file::Value as C;
    match value {
        C::U8(v) => Value::U8(*v),
        C::I8(v) => Value::I8(*v),
        C::U16(v) => Value::U16(*v),
        C::I16(v) => Value::I16(*v),
        C::U32(v) => Value::U32(*v),
        C::I32(v) => Value::I32(*v),
        C::U64(v) => Value::U64(*v),
        C::I64(v) => Value::I64(*v),
        C::F32(v) => Value::F32(*v),
        C::F64(v) => Value::F64(*v),
        C::Bool(v) => Value::Bool(*v),
        C::String(v) => Value::String(v.clone()),
        C::Array(v) => Value::Array(v.iter().map(from_candle).collect()),
    }
}

/// Converts our metadata value into candle's, to feed candle's writer.
fn to_candle(value: &Value) -> gguf_file::Value {
    use gguf_file::Value as C;
    match value {
        Value::U8(v) => C::U8(*v),
        Value::I8(v) => C::I8(*v),
        Value::U16(v) => C::U16(*v),
        Value::I16(v) => C::I16(*v),
        Value::U32(v) => C::U32(*v),
        Value::I32(v) => C::I32(*v),
        Value::U64(v) => C::U64(*v),
        Value::I64(v) => C::I64(*v),
        Value::F32(v) => C::F32(*v),
        Value::F64(v) => C::F64(*v),
        Value::Bool(v) => C::Bool(*v),
        Value::String(v) => C::String(v.clone()),
        Value::Array(v) => C::Array(v.iter().map(to_candle).collect()),
    }
}

fn sorted(metadata: &[(String, Value)]) -> BTreeMap<String, Value> {
    metadata.iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Round trips and cross-checks

#[test]
fn written_file_reads_back_identically() -> TestResult {
    let metadata = every_value_type();
    let tensors = tensor_fixtures()?;
    let bytes = write_to_vec(&metadata, &tensors)?;
    let file = read(&bytes, "roundtrip.gguf")?;

    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.file_len(), bytes.len() as u64);
    assert_eq!(file.data_start() % 32, 0);
    assert_eq!(file.metadata(), &metadata[..]);
    assert_eq!(file.tensor_infos().len(), tensors.len());

    let mut expected_offset = 0u64;
    let mut cursor = Cursor::new(&bytes);
    for ((name, original), info) in tensors.iter().zip(file.tensor_infos()) {
        assert_eq!(&info.name, name);
        assert_eq!(info.dtype, original.dtype(), "{name}");
        assert_eq!(info.shape().dims(), original.shape().dims(), "{name}");
        let reversed: Vec<usize> = original.shape().dims().iter().rev().copied().collect();
        assert_eq!(info.dims, reversed, "{name}: dims are stored ne0 first");
        assert_eq!(info.offset, expected_offset, "{name}: llama.cpp layout");
        assert_eq!(
            info.size_in_bytes(),
            original.storage_size_in_bytes(),
            "{name}"
        );
        expected_offset += (info.size_in_bytes() as u64).next_multiple_of(32);

        let loaded = file.tensor(&mut cursor, name, &Device::Cpu)?;
        assert_eq!(loaded.dtype(), original.dtype());
        assert_eq!(loaded.shape(), original.shape());
        assert_eq!(loaded.data()?, original.data()?, "{name}: raw bytes");
        assert_eq!(dequantized(&loaded)?, dequantized(original)?, "{name}");
    }
    // every tensor, the last included, is padded to the alignment
    assert_eq!(file.data_start() + expected_offset, bytes.len() as u64);
    Ok(())
}

#[test]
fn quantized_fixtures_hold_the_source_values() -> TestResult {
    // Guards the round trip against vacuous fixtures (e.g. all-zero tensors).
    let tensors = tensor_fixtures()?;
    let mut rng = Rng(42);
    for (name, tensor) in &tensors {
        let source: Vec<f32> = (0..tensor.shape().elem_count())
            .map(|_| rng.unit())
            .collect();
        let values = dequantized(tensor)?;
        let worst = source
            .iter()
            .zip(&values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let tolerance = match tensor.dtype() {
            GgmlDType::F32 => 0.0,
            GgmlDType::F16 => 1e-3,
            GgmlDType::BF16 => 1e-2,
            _ => 0.3,
        };
        assert!(worst <= tolerance, "{name}: max error {worst}");
    }
    Ok(())
}

#[test]
fn candle_reads_what_we_write() -> TestResult {
    let metadata = every_value_type();
    let tensors = tensor_fixtures()?;
    let bytes = write_to_vec(&metadata, &tensors)?;
    let ours = read(&bytes, "ours.gguf")?;
    let mut cursor = Cursor::new(&bytes);
    let theirs = gguf_file::Content::read(&mut cursor)?;

    assert_eq!(theirs.tensor_data_offset, ours.data_start());
    let their_metadata: BTreeMap<String, Value> = theirs
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), from_candle(v)))
        .collect();
    assert_eq!(their_metadata, sorted(&metadata));
    assert_eq!(theirs.tensor_infos.len(), tensors.len());
    for (name, original) in &tensors {
        let info = &theirs.tensor_infos[name];
        let our_info = ours.tensor_info(name).ok_or("missing tensor info")?;
        assert_eq!(info.ggml_dtype, our_info.dtype, "{name}");
        assert_eq!(info.shape.dims(), our_info.shape().dims(), "{name}");
        assert_eq!(info.offset, our_info.offset, "{name}");
        let loaded = theirs.tensor(&mut cursor, name, &Device::Cpu)?;
        assert_eq!(loaded.data()?, original.data()?, "{name}");
    }
    Ok(())
}

#[test]
fn we_read_what_candle_writes() -> TestResult {
    let metadata = every_value_type();
    let tensors = tensor_fixtures()?;
    let candle_metadata: Vec<(&str, gguf_file::Value)> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), to_candle(v)))
        .collect();
    let metadata_refs: Vec<(&str, &gguf_file::Value)> =
        candle_metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut cursor = Cursor::new(Vec::new());
    gguf_file::write(&mut cursor, &metadata_refs, &tensor_refs)?;
    let bytes = cursor.into_inner();

    let file = read(&bytes, "candle.gguf")?;
    assert_eq!(file.version(), 2, "candle writes GGUF v2");
    assert_eq!(file.metadata(), &metadata[..]);
    let mut cursor = Cursor::new(&bytes);
    for (name, original) in &tensors {
        let loaded = file.tensor(&mut cursor, name, &Device::Cpu)?;
        assert_eq!(loaded.shape(), original.shape(), "{name}");
        assert_eq!(loaded.data()?, original.data()?, "{name}");
    }
    Ok(())
}

#[test]
fn general_alignment_sets_the_layout() -> TestResult {
    let mut metadata = every_value_type();
    metadata.push(entry("general.alignment", Value::U32(64)));
    let tensors = tensor_fixtures()?;
    let bytes = write_to_vec(&metadata, &tensors)?;
    let file = read(&bytes, "aligned.gguf")?;
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_start() % 64, 0);
    assert!(file.tensor_infos().iter().all(|t| t.offset % 64 == 0));
    assert!(file.tensor_infos().iter().any(|t| t.offset % 128 == 64));

    let mut cursor = Cursor::new(&bytes);
    let theirs = gguf_file::Content::read(&mut cursor)?;
    assert_eq!(theirs.tensor_data_offset, file.data_start());
    for (name, original) in &tensors {
        let loaded = theirs.tensor(&mut cursor, name, &Device::Cpu)?;
        assert_eq!(loaded.data()?, original.data()?, "{name}");
    }
    Ok(())
}

#[test]
fn round_trip_through_a_real_file() -> TestResult {
    let metadata = every_value_type();
    let tensors = tensor_fixtures()?;
    let mut file = tempfile::tempfile()?;
    write_gguf(&mut file, &metadata, &as_refs(&tensors))?;
    file.flush()?;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file);
    let parsed = GgufFile::read(&mut reader, "temp.gguf")?;
    assert_eq!(parsed.metadata(), &metadata[..]);
    let (name, original) = tensors.last().ok_or("no tensors")?;
    let loaded = parsed.tensor(&mut reader, name, &Device::Cpu)?;
    assert_eq!(loaded.data()?, original.data()?);
    Ok(())
}

#[test]
fn writer_rejects_what_the_format_cannot_hold() -> TestResult {
    let rejected = |metadata: &[(String, Value)], tensors: &[(String, &QTensor)]| {
        write_gguf(&mut Vec::new(), metadata, tensors)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let metadata_cases = [
        (
            vec![entry("a", Value::U8(1)), entry("a", Value::U8(2))],
            "duplicate metadata key a",
        ),
        (
            vec![entry(
                "mixed",
                Value::Array(vec![Value::U8(1), Value::I8(2)]),
            )],
            "key mixed: array mixes element types u8 and i8",
        ),
        (
            vec![entry(
                "deep",
                Value::Array(vec![Value::Array(vec![Value::Array(vec![])])]),
            )],
            "key deep: arrays nested deeper than 2 levels",
        ),
        (
            vec![entry("general.alignment", Value::U32(3))],
            "general.alignment is u32 3,",
        ),
        (
            vec![entry("general.alignment", Value::U32(0))],
            "general.alignment is u32 0,",
        ),
        (
            vec![entry("general.alignment", Value::U64(32))],
            "general.alignment is u64 32,",
        ),
    ];
    for (metadata, expected) in metadata_cases {
        let message = rejected(&metadata, &[]);
        assert!(
            message.starts_with(&format!("{WRITER_LABEL}: {expected}")),
            "{message:?}"
        );
    }

    let tensors = tensor_fixtures()?;
    let twice = [as_refs(&tensors)[0].clone(), as_refs(&tensors)[0].clone()];
    assert_eq!(
        rejected(&[], &twice),
        format!("{WRITER_LABEL}: duplicate tensor name tensor.f32.odd")
    );
    Ok(())
}

#[test]
fn typed_getters_convert_or_name_file_and_key() -> TestResult {
    let bytes = write_to_vec(&every_value_type(), &[])?;
    let file = read(&bytes, "getters.gguf")?;
    assert_eq!(file.architecture()?, "mimir-test");
    assert_eq!(file.u32("test.u8")?, 200);
    assert_eq!(file.u32("test.u16")?, 60_000);
    assert_eq!(file.u32("test.u32")?, 4_000_000_000);
    assert_eq!(file.f32("test.f32")?, -1.5e-7);
    assert_eq!(file.f32("test.f64")?, std::f32::consts::PI);
    assert_eq!(file.str("test.string")?, "héllo, wörld ✓");
    assert_eq!(file.string_array("test.strings")?, ["<s>", "", "Ġthe"]);
    assert_eq!(file.f32_array("test.f32s")?, [0.5, -2.0, 1e30]);
    assert_eq!(file.i32_array("test.i32s")?, [3, -7, i32::MAX]);
    assert_eq!(file.i32_array("test.u8s")?, [0, 255]);
    assert_eq!(file.get("test.true"), Some(&Value::Bool(true)));
    assert_eq!(file.get("absent"), None);

    let errors = [
        (file.u32("absent").err(), "getters.gguf: missing metadata key absent"),
        (
            file.u32("test.i64").err(),
            "getters.gguf: key test.i64: expected an integer in u32 range, found i64 -9223372036854775808",
        ),
        (
            file.u32("test.string").err(),
            "getters.gguf: key test.string: expected an integer in u32 range, found string \"héllo, wörld ✓\"",
        ),
        (
            file.f32("test.u32").err(),
            "getters.gguf: key test.u32: expected an f32 or f64, found u32 4000000000",
        ),
        (
            file.str("test.strings").err(),
            "getters.gguf: key test.strings: expected a string, found array of 3 string",
        ),
        (
            file.string_array("test.i32s").err(),
            "getters.gguf: key test.i32s: expected an array of strings, found element 0 is i32 3",
        ),
        (
            file.i32_array("test.nested_u32").err(),
            "getters.gguf: key test.nested_u32: expected an array of integers in i32 range, found element 0 is array of 2 u32",
        ),
        (
            file.f32_array("test.f32").err(),
            "getters.gguf: key test.f32: expected an array of f32 or f64, found f32 -1.5e-7",
        ),
    ];
    for (err, expected) in errors {
        assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(expected));
    }
    let missing = file
        .tensor(&mut Cursor::new(&bytes), "nope", &Device::Cpu)
        .err();
    assert_eq!(
        missing.map(|e| e.to_string()).as_deref(),
        Some("getters.gguf: no tensor named nope")
    );
    Ok(())
}

#[test]
fn reading_metadata_never_allocates_tensor_data() -> TestResult {
    let big = Tensor::arange(0f32, 512.0 * 1024.0, &Device::Cpu)?.reshape((512, 1024))?;
    let tensors = vec![("big".to_owned(), QTensor::quantize(&big, GgmlDType::F32)?)];
    let bytes = write_to_vec(&every_value_type(), &tensors)?;
    assert!(bytes.len() > 2 << 20);

    let (file, largest) = largest_allocation(|| read(&bytes, "big.gguf"));
    let file = file?;
    assert!(
        largest <= 64 * 1024 + ALLOCATION_SLACK,
        "read allocated {largest} bytes"
    );

    let size = file.tensor_info("big").ok_or("no info")?.size_in_bytes();
    let (loaded, largest) =
        largest_allocation(|| file.tensor(&mut Cursor::new(&bytes), "big", &Device::Cpu));
    assert_eq!(loaded?.data()?, tensors[0].1.data()?);
    assert_eq!(largest, size, "one buffer of exactly the tensor's size");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Real files

const PHI3_VOCAB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/phi3-tokenizer/ggml-vocab-phi-3.gguf"
);

#[test]
fn phi3_vocab_file_parses_matches_candle_and_rewrites_identically() -> TestResult {
    let mut reader = BufReader::new(std::fs::File::open(PHI3_VOCAB)?);
    let file = GgufFile::read(&mut reader, "ggml-vocab-phi-3.gguf")?;
    assert_eq!(file.version(), 3);
    assert_eq!(file.architecture()?, "phi3");
    assert_eq!(file.str("tokenizer.ggml.model")?, "llama");
    let tokens = file.string_array("tokenizer.ggml.tokens")?;
    assert_eq!(tokens.len(), 32064);
    assert_eq!(tokens[..3], ["<unk>", "<s>", "</s>"]);
    assert_eq!(tokens[13], "<0x0A>");
    assert_eq!(tokens[32000], "<|endoftext|>");
    assert_eq!(tokens[32010], "<|user|>");
    assert_eq!(file.f32_array("tokenizer.ggml.scores")?.len(), 32064);
    assert_eq!(file.i32_array("tokenizer.ggml.token_type")?.len(), 32064);
    assert_eq!(file.u32("tokenizer.ggml.bos_token_id")?, 1);
    assert_eq!(file.u32("tokenizer.ggml.eos_token_id")?, 32000);
    assert_eq!(file.u32("phi3.block_count")?, 32);
    assert!(file.tensor_infos().is_empty());

    reader.seek(SeekFrom::Start(0))?;
    let theirs = gguf_file::Content::read(&mut reader)?;
    let their_metadata: BTreeMap<String, Value> = theirs
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), from_candle(v)))
        .collect();
    assert_eq!(their_metadata, sorted(file.metadata()));

    // our writer reproduces the file byte for byte
    let rewritten = write_to_vec(file.metadata(), &[])?;
    assert!(rewritten == std::fs::read(PHI3_VOCAB)?, "rewrite differs");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Corruption corpus

/// A small valid GGUF built by hand (independently of the writer), with the byte offset of
/// every field a corruption targets.
struct Tiny {
    bytes: Vec<u8>,
    marks: BTreeMap<&'static str, usize>,
}

const TINY: &str = "tiny.gguf";

impl Tiny {
    fn mark(&mut self, name: &'static str) -> &mut Self {
        self.marks.insert(name, self.bytes.len());
        self
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }

    fn string(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }

    fn at(&self, mark: &str) -> usize {
        self.marks[mark]
    }

    /// A copy with `bytes` written at `mark` (plus `delta`).
    fn patched(&self, mark: &str, delta: usize, bytes: &[u8]) -> Vec<u8> {
        let mut copy = self.bytes.clone();
        let at = self.at(mark) + delta;
        copy[at..at + bytes.len()].copy_from_slice(bytes);
        copy
    }

    fn build() -> Tiny {
        let mut t = Tiny {
            bytes: Vec::new(),
            marks: BTreeMap::new(),
        };
        t.raw(b"GGUF").mark("version").u32(3);
        t.mark("tensor_count").u64(2).mark("kv_count").u64(6);

        t.mark("arch_key").string("general.architecture");
        t.mark("arch_type").u32(8).mark("arch_value").string("tiny");

        t.string("general.alignment");
        t.mark("alignment_type").u32(4).mark("alignment").u32(32);

        t.string("tiny.tokens").u32(9).mark("tokens_type").u32(8);
        t.mark("tokens_len").u64(3).string("a").string("bc");
        t.mark("token_def").string("def");

        t.string("tiny.nested")
            .u32(9)
            .u32(9)
            .mark("nested_len")
            .u64(2);
        t.mark("inner0_type").u32(4).u64(2).u32(1).u32(2);
        t.u32(4).u64(1).u32(3);

        t.string("tiny.scale")
            .mark("scale_type")
            .u32(6)
            .raw(&0.25f32.to_le_bytes());
        t.mark("flag_key")
            .string("tiny.fflag")
            .u32(7)
            .mark("flag")
            .raw(&[1]);

        t.mark("t0_name")
            .string("blk.0.f32")
            .mark("t0_ndims")
            .u32(2);
        t.mark("t0_dim0").u64(32).mark("t0_dim1").u64(2);
        t.mark("t0_type").u32(0).mark("t0_offset").u64(0);

        t.mark("t1_name")
            .string("blk.0.q80")
            .mark("t1_ndims")
            .u32(1);
        t.mark("t1_dim0")
            .u64(32)
            .mark("t1_type")
            .u32(8)
            .mark("t1_offset")
            .u64(256);

        t.mark("header_end");
        let padding = t.bytes.len().next_multiple_of(32) - t.bytes.len();
        t.raw(&vec![0; padding]).mark("t0_data");
        for i in 0..64 {
            t.raw(&(i as f32 * 0.5).to_le_bytes());
        }
        // one Q8_0 block: f16 scale 0.5 (0x3800), then 32 quants -16..16
        t.mark("t1_data").raw(&0x3800u16.to_le_bytes());
        for q in -16i8..16 {
            t.raw(&q.to_le_bytes());
        }
        t
    }
}

#[test]
fn tiny_fixture_is_valid_for_us_and_for_candle() -> TestResult {
    let tiny = Tiny::build();
    let file = read(&tiny.bytes, TINY)?;
    assert_eq!(file.architecture()?, "tiny");
    assert_eq!(file.string_array("tiny.tokens")?, ["a", "bc", "def"]);
    assert_eq!(file.f32("tiny.scale")?, 0.25);
    assert_eq!(file.data_start(), tiny.at("t0_data") as u64);
    let mut cursor = Cursor::new(&tiny.bytes);
    let t0 = file.tensor(&mut cursor, "blk.0.f32", &Device::Cpu)?;
    assert_eq!(t0.shape().dims(), &[2, 32]);
    let expected: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
    assert_eq!(dequantized(&t0)?, expected);
    let t1 = file.tensor(&mut cursor, "blk.0.q80", &Device::Cpu)?;
    let expected: Vec<f32> = (-16..16).map(|q| q as f32 * 0.5).collect();
    assert_eq!(dequantized(&t1)?, expected);

    cursor.seek(SeekFrom::Start(0))?;
    let theirs = gguf_file::Content::read(&mut cursor)?;
    assert_eq!(theirs.tensor_data_offset, file.data_start());
    assert_eq!(theirs.tensor_infos.len(), 2);
    Ok(())
}

/// Named corruptions of the tiny file, each with a fragment its error message must contain.
fn corruption_corpus(t: &Tiny) -> Vec<(String, Vec<u8>, &'static str)> {
    let len = t.bytes.len();
    let u32le = |v: u32| v.to_le_bytes().to_vec();
    let u64le = |v: u64| v.to_le_bytes().to_vec();
    let mut cases: Vec<(String, Vec<u8>, &'static str)> = Vec::new();
    let mut case = |name: String, bytes: Vec<u8>, expect: &'static str| {
        cases.push((name, bytes, expect));
    };

    let mut magic = t.bytes.clone();
    magic[3] = b'X';
    case("bad magic".into(), magic, "magic bytes [47, 47, 55, 58]");
    let mut magic = t.bytes.clone();
    magic[..4].fill(0);
    case("zero magic".into(), magic, "not a GGUF file");
    for (version, expect) in [
        (0u32, "unsupported GGUF version 0"),
        (1, "unsupported GGUF version 1"),
        (99, "unsupported GGUF version 99"),
        (3u32.swap_bytes(), "unsupported GGUF version 50331648"),
    ] {
        case(
            format!("version {version}"),
            t.patched("version", 0, &u32le(version)),
            expect,
        );
    }
    for count in [u64::MAX, 1 << 40, 1 << 20] {
        case(
            format!("tensor count {count}"),
            t.patched("tensor_count", 0, &u64le(count)),
            "tensor count",
        );
        case(
            format!("kv count {count}"),
            t.patched("kv_count", 0, &u64le(count)),
            "metadata kv count",
        );
    }
    case(
        "kv count one too many".into(),
        t.patched("kv_count", 0, &u64le(7)),
        "name of tensor #0 needs",
    );
    for n in [u64::MAX, 1 << 40, 1 << 62] {
        case(
            format!("key length {n}"),
            t.patched("arch_key", 0, &u64le(n)),
            "metadata key #0 needs",
        );
        case(
            format!("string length {n}"),
            t.patched("arch_value", 0, &u64le(n)),
            "value of key general.architecture needs",
        );
        case(
            format!("token length {n}"),
            t.patched("token_def", 0, &u64le(n)),
            "value of key tiny.tokens needs",
        );
        case(
            format!("array length {n}"),
            t.patched("tokens_len", 0, &u64le(n)),
            "array length of key tiny.tokens",
        );
        case(
            format!("nested array length {n}"),
            t.patched("nested_len", 0, &u64le(n)),
            "array length of key tiny.nested",
        );
    }
    let just_too_long = (len - t.at("arch_value") - 8 + 1) as u64;
    case(
        "string one byte too long".into(),
        t.patched("arch_value", 0, &u64le(just_too_long)),
        "value of key general.architecture needs",
    );
    case(
        "array length 2^61 (x8 overflows)".into(),
        t.patched("tokens_len", 0, &u64le(1 << 61)),
        "array length of key tiny.tokens",
    );
    for code in [13u32, 200, u32::MAX] {
        case(
            format!("value type {code}"),
            t.patched("arch_type", 0, &u32le(code)),
            "key general.architecture: unknown value type code",
        );
        case(
            format!("array element type {code}"),
            t.patched("tokens_type", 0, &u32le(code)),
            "key tiny.tokens: unknown value type code",
        );
    }
    case(
        "scale type 200".into(),
        t.patched("scale_type", 0, &u32le(200)),
        "key tiny.scale: unknown value type code 200",
    );
    case(
        "array nested three deep".into(),
        t.patched("inner0_type", 0, &u32le(9)),
        "key tiny.nested: arrays nested deeper than 2 levels",
    );
    for (a, expect) in [
        (0u32, "general.alignment is u32 0,"),
        (3, "general.alignment is u32 3,"),
        (48, "general.alignment is u32 48,"),
        (u32::MAX, "general.alignment is u32 4294967295,"),
        (
            1 << 31,
            "blk.0.q80: data offset 256 is not a multiple of the alignment 2147483648",
        ),
    ] {
        case(
            format!("alignment {a}"),
            t.patched("alignment", 0, &u32le(a)),
            expect,
        );
    }
    case(
        "alignment typed i32".into(),
        t.patched("alignment_type", 0, &u32le(5)),
        "general.alignment is i32 32,",
    );
    case(
        "alignment typed f32".into(),
        t.patched("alignment_type", 0, &u32le(6)),
        "general.alignment is f32",
    );
    case(
        "bool byte 2".into(),
        t.patched("flag", 0, &[2]),
        "key tiny.fflag: bool byte 2 is neither 0 nor 1",
    );
    case(
        "invalid UTF-8 key".into(),
        t.patched("arch_key", 8, &[0xFF]),
        "metadata key #0 is not valid UTF-8",
    );
    case(
        "invalid UTF-8 value".into(),
        t.patched("token_def", 8, &[0xC3, 0x28]),
        "value of key tiny.tokens is not valid UTF-8",
    );
    case(
        "invalid UTF-8 tensor name".into(),
        t.patched("t1_name", 8, &[0x80]),
        "name of tensor #1 is not valid UTF-8",
    );
    case(
        "duplicate key".into(),
        t.patched("flag_key", 8, b"tiny.scale"),
        "duplicate metadata key tiny.scale",
    );
    case(
        "duplicate tensor".into(),
        t.patched("t1_name", 8, b"blk.0.f32"),
        "duplicate tensor name blk.0.f32",
    );
    for n in [0u32, 5, u32::MAX] {
        case(
            format!("n_dims {n}"),
            t.patched("t0_ndims", 0, &u32le(n)),
            "tensor blk.0.f32: ",
        );
    }
    case(
        "dim0 zero".into(),
        t.patched("t0_dim0", 0, &u64le(0)),
        "tensor blk.0.f32: dims [0, 2] contain a zero",
    );
    case(
        "dim1 zero".into(),
        t.patched("t0_dim1", 0, &u64le(0)),
        "tensor blk.0.f32: dims [32, 0] contain a zero",
    );
    case(
        "dims product overflows".into(),
        {
            let mut b = t.patched("t0_dim0", 0, &u64le(1 << 40));
            b[t.at("t0_dim1")..][..8].copy_from_slice(&u64le(1 << 40));
            b
        },
        "overflow the element count or byte size",
    );
    case(
        "dim u64::MAX".into(),
        t.patched("t0_dim1", 0, &u64le(u64::MAX)),
        "overflow the element count or byte size",
    );
    case(
        "byte size overflows".into(),
        t.patched("t0_dim1", 0, &u64le(1 << 58)),
        "overflow the element count or byte size",
    );
    case(
        "dims beyond file".into(),
        t.patched("t0_dim1", 0, &u64le(1 << 20)),
        "tensor blk.0.f32: data range",
    );
    for code in [4u32, 5, 16, 29, 31, 1000, u32::MAX] {
        case(
            format!("ggml type {code}"),
            t.patched("t0_type", 0, &u32le(code)),
            "tensor blk.0.f32: unknown ggml type code",
        );
    }
    case(
        "ne0 not a block multiple".into(),
        t.patched("t1_dim0", 0, &u64le(48)),
        "tensor blk.0.q80: ne0 48 is not a multiple of the Q8_0 block size 32",
    );
    case(
        "ne0 below block size".into(),
        t.patched("t1_dim0", 0, &u64le(1)),
        "ne0 1 is not a multiple",
    );
    case(
        "k-quant with short ne0".into(),
        t.patched("t1_type", 0, &u32le(12)),
        "ne0 32 is not a multiple of the Q4K block size 256",
    );
    case(
        "type grows data past the end".into(),
        t.patched("t1_type", 0, &u32le(0)),
        "tensor blk.0.q80: data range",
    );
    for offset in [1u64, 255, 257, (1 << 40) + 1] {
        case(
            format!("misaligned offset {offset}"),
            t.patched("t1_offset", 0, &u64le(offset)),
            "is not a multiple of the alignment 32",
        );
    }
    for offset in [288u64, 1 << 40, u64::MAX - 31] {
        case(
            format!("offset {offset} beyond the end"),
            t.patched("t1_offset", 0, &u64le(offset)),
            "tensor blk.0.q80: data range",
        );
    }
    cases
}

fn assert_rejected(name: &str, bytes: &[u8], expect: &str) {
    let (result, largest) = largest_allocation(|| read(bytes, TINY));
    let message = match result {
        Ok(_) => panic!("{name}: accepted"),
        Err(e) => e.to_string(),
    };
    assert!(message.starts_with("tiny.gguf: "), "{name}: {message}");
    assert!(
        message.contains(expect),
        "{name}: {message:?} lacks {expect:?}"
    );
    assert!(
        largest <= bytes.len() + ALLOCATION_SLACK,
        "{name}: allocated {largest} bytes for a {}-byte file",
        bytes.len()
    );
}

#[test]
fn corrupted_headers_are_rejected_with_small_allocations() {
    let tiny = Tiny::build();
    let corpus = corruption_corpus(&tiny);
    assert!(corpus.len() >= 50, "only {} cases", corpus.len());
    for (name, bytes, expect) in &corpus {
        assert_rejected(name, bytes, expect);
    }
}

#[test]
fn every_truncation_is_rejected() {
    let tiny = Tiny::build();
    let header_end = tiny.at("header_end");
    for cut in 0..tiny.bytes.len() {
        let expect = match cut {
            0..4 => "not a GGUF file",
            _ if cut < header_end => "remain",
            _ => "beyond file end",
        };
        assert_rejected(&format!("cut at {cut}"), &tiny.bytes[..cut], expect);
    }
}

#[test]
fn data_truncated_after_parsing_fails_in_tensor_and_tensor_bytes() -> TestResult {
    let tiny = Tiny::build();
    let file = read(&tiny.bytes, TINY)?;
    for (tensor, from, to) in [
        ("blk.0.f32", tiny.at("t0_data"), tiny.at("t1_data")),
        ("blk.0.q80", tiny.at("t1_data"), tiny.bytes.len()),
    ] {
        for cut in [from, from + 1, (from + to) / 2, to - 1] {
            let mut reader = Cursor::new(&tiny.bytes[..cut]);
            let err = file.tensor(&mut reader, tensor, &Device::Cpu).err();
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            let expected =
                format!("tiny.gguf: tensor {tensor}: file ends inside data range {from}..{to}");
            assert_eq!(message, expected, "cut at {cut}");
            let raw = file.tensor_bytes(&mut reader, tensor).err();
            assert_eq!(raw.map(|e| e.to_string()).unwrap_or_default(), expected);
        }
        // Whole, the raw bytes are the file's range, which is what candle's tensor holds.
        let mut reader = Cursor::new(&tiny.bytes);
        let raw = file.tensor_bytes(&mut reader, tensor)?;
        assert_eq!(raw, tiny.bytes[from..to]);
        let loaded = file.tensor(&mut reader, tensor, &Device::Cpu)?;
        assert_eq!(loaded.data()?.as_ref(), &raw[..]);
    }
    Ok(())
}

#[test]
fn random_byte_flips_never_panic() {
    let tiny = Tiny::build();
    let len = tiny.bytes.len();
    let mut rng = Rng(0x5EED);
    let (mut accepted, mut rejected) = (0, 0);
    for iteration in 0..500 {
        let mut bytes = tiny.bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(len);
            bytes[at] ^= 1 + rng.below(255) as u8;
        }
        let outcome = std::panic::catch_unwind(|| {
            largest_allocation(|| match read(&bytes, TINY) {
                Ok(file) => {
                    let mut cursor = Cursor::new(&bytes);
                    for info in file.tensor_infos() {
                        let loaded = file.tensor(&mut cursor, &info.name, &Device::Cpu);
                        assert!(loaded.is_ok(), "{:?}", loaded.err());
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            })
        });
        let Ok((result, largest)) = outcome else {
            panic!("iteration {iteration} panicked");
        };
        // A flipped array length that still fits the file is honoured: each element costs one
        // `Value` (32 bytes) in memory per byte or more on disk.
        let bound = len * std::mem::size_of::<Value>() + ALLOCATION_SLACK;
        assert!(
            largest <= bound,
            "iteration {iteration}: allocated {largest}"
        );
        match result {
            Ok(()) => accepted += 1,
            Err(message) => {
                assert!(message.starts_with("tiny.gguf: "), "{message}");
                rejected += 1;
            }
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "{accepted} accepted, {rejected} rejected"
    );
}
