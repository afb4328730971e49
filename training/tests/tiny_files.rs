//! The files themselves: GGUF metadata and tensor types read back with the project's reader,
//! the adapter's keys and shapes, determinism, atomic writes, and the hub layout.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use mimir::engine::gguf::GgufFile;
use mimir_train::tiny::{
    hub_spec, write_hub, write_tiny, Arch, GgufType, TinyError, TinySpec, LORA_ALPHA, LORA_RANK,
};

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/phi3-tokenizer").join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("shared/phi3-tokenizer/{name} in an ancestor folder"))
}

fn read_gguf(path: &Path) -> GgufFile {
    GgufFile::read(&mut File::open(path).unwrap(), &path.display().to_string()).unwrap()
}

fn dtype(gguf: &GgufFile, name: &str) -> GgmlDType {
    gguf.tensor_info(name)
        .unwrap_or_else(|| panic!("{} has no {name}", gguf.source()))
        .dtype
}

/// Every file under `dir`, relative path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_owned();
                files.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn gguf_metadata_and_tensor_types_are_as_llama_cpp_writes() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = shared("ggml-vocab-phi-3.gguf");
    let files = write_tiny(&TinySpec::phi3(), dir.path(), Some(&vocab)).unwrap();
    let reference = read_gguf(&vocab);

    for (ty, path) in &files.ggufs {
        let gguf = read_gguf(path);
        assert_eq!(gguf.architecture().unwrap(), "phi3");
        assert_eq!(gguf.u32("general.file_type").unwrap(), ty.file_type());
        assert_eq!(gguf.u32("general.quantization_version").unwrap(), 2);
        assert_eq!(gguf.u32("phi3.context_length").unwrap(), 4096);
        assert_eq!(
            gguf.u32("phi3.rope.scaling.original_context_length")
                .unwrap(),
            4096
        );
        assert_eq!(gguf.u32("phi3.embedding_length").unwrap(), 64);
        assert_eq!(gguf.u32("phi3.feed_forward_length").unwrap(), 128);
        assert_eq!(gguf.u32("phi3.block_count").unwrap(), 2);
        assert_eq!(gguf.u32("phi3.attention.head_count").unwrap(), 4);
        assert_eq!(gguf.u32("phi3.attention.head_count_kv").unwrap(), 4);
        assert_eq!(gguf.u32("phi3.rope.dimension_count").unwrap(), 16);
        assert_eq!(gguf.f32("phi3.rope.freq_base").unwrap(), 10_000.0);
        assert_eq!(
            gguf.f32("phi3.attention.layer_norm_rms_epsilon").unwrap(),
            1e-5
        );
        // the model keys appear in the order llama.cpp wrote them in its Phi-3 vocab file
        let keys =
            |g: &GgufFile| -> Vec<String> { g.metadata().iter().map(|(k, _)| k.clone()).collect() };
        assert_eq!(keys(&gguf), keys(&reference));
        // the tokenizer is copied verbatim
        for (key, value) in reference.metadata() {
            if key.starts_with("tokenizer.") {
                assert_eq!(gguf.get(key), Some(value), "{key}");
            }
        }

        assert_eq!(gguf.tensor_infos().len(), 1 + 2 * 6 + 2);
        let matrix = ty.matrix_dtype(64);
        assert_eq!(dtype(&gguf, "token_embd.weight"), matrix);
        assert_eq!(dtype(&gguf, "output.weight"), matrix);
        assert_eq!(dtype(&gguf, "output_norm.weight"), GgmlDType::F32);
        for layer in 0..2 {
            let name = |what: &str| format!("blk.{layer}.{what}.weight");
            assert_eq!(dtype(&gguf, &name("attn_norm")), GgmlDType::F32);
            assert_eq!(dtype(&gguf, &name("ffn_norm")), GgmlDType::F32);
            assert_eq!(dtype(&gguf, &name("attn_qkv")), matrix);
            assert_eq!(dtype(&gguf, &name("ffn_down")), ty.matrix_dtype(128));
            let qkv = gguf.tensor_info(&name("attn_qkv")).unwrap();
            assert_eq!(qkv.dims, [64, 192], "ne0 = hidden, ne1 = (4 + 2*4) * 16");
            let up = gguf.tensor_info(&name("ffn_up")).unwrap();
            assert_eq!(up.dims, [64, 256], "fused gate_up: 2 * ffn rows");
            let down = gguf.tensor_info(&name("ffn_down")).unwrap();
            assert_eq!(down.dims, [128, 64]);
        }
    }
    let q4k = read_gguf(files.gguf(GgufType::Q4K).unwrap());
    assert_eq!(dtype(&q4k, "blk.0.attn_qkv.weight"), GgmlDType::Q8_0);
}

#[test]
fn llama_gguf_has_separate_projections_and_gqa() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(&TinySpec::llama(), dir.path(), None).unwrap();
    assert_eq!(files.tokenizer_json, None);
    let gguf = read_gguf(files.gguf(GgufType::Q8_0).unwrap());
    assert_eq!(gguf.architecture().unwrap(), "llama");
    assert_eq!(gguf.u32("llama.attention.head_count_kv").unwrap(), 2);
    assert_eq!(gguf.u32("llama.vocab_size").unwrap(), 32064);
    assert_eq!(gguf.f32("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(gguf.u32("general.file_type").unwrap(), 7);
    assert!(gguf.get("tokenizer.ggml.tokens").is_none());
    let dims = |n: &str| gguf.tensor_info(n).unwrap().dims.clone();
    assert_eq!(dims("blk.1.attn_q.weight"), [64, 64]);
    assert_eq!(dims("blk.1.attn_k.weight"), [64, 32]);
    assert_eq!(dims("blk.1.attn_v.weight"), [64, 32]);
    assert_eq!(dims("blk.1.ffn_gate.weight"), [64, 128]);
    assert_eq!(dims("blk.1.ffn_up.weight"), [64, 128]);
    assert_eq!(dtype(&gguf, "blk.1.ffn_norm.weight"), GgmlDType::F32);
    assert_eq!(dtype(&gguf, "blk.1.attn_v.weight"), GgmlDType::Q8_0);

    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(&files.hf_config).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForCausalLM");
    assert_eq!(config["model_type"], "llama");
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["rope_theta"], 100_000.0);
    assert_eq!(config["rope_scaling"], serde_json::Value::Null);
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["torch_dtype"], "float32");
}

#[test]
fn hf_and_adapter_safetensors_have_the_expected_keys_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(&TinySpec::phi3(), dir.path(), None).unwrap();
    let dev = Device::Cpu;

    let hf = candle_core::safetensors::load(&files.hf_weights, &dev).unwrap();
    assert_eq!(hf.len(), 3 + 2 * 6);
    let shape = |t: &Tensor| t.dims().to_vec();
    assert_eq!(shape(&hf["model.embed_tokens.weight"]), [32064, 64]);
    assert_eq!(shape(&hf["lm_head.weight"]), [32064, 64]);
    assert_eq!(shape(&hf["model.norm.weight"]), [64]);
    assert_eq!(
        shape(&hf["model.layers.1.self_attn.qkv_proj.weight"]),
        [192, 64]
    );
    assert_eq!(
        shape(&hf["model.layers.1.self_attn.o_proj.weight"]),
        [64, 64]
    );
    assert_eq!(
        shape(&hf["model.layers.1.mlp.gate_up_proj.weight"]),
        [256, 64]
    );
    assert_eq!(shape(&hf["model.layers.1.mlp.down_proj.weight"]), [64, 128]);
    assert_eq!(shape(&hf["model.layers.0.input_layernorm.weight"]), [64]);
    assert_eq!(
        shape(&hf["model.layers.0.post_attention_layernorm.weight"]),
        [64]
    );

    let adapter = candle_core::safetensors::load(&files.adapter_weights, &dev).unwrap();
    assert_eq!(adapter.len(), 2 * 4 * 2);
    let out_in = [
        ("self_attn.qkv_proj", 192, 64),
        ("self_attn.o_proj", 64, 64),
        ("mlp.gate_up_proj", 256, 64),
        ("mlp.down_proj", 64, 128),
    ];
    for layer in 0..2 {
        for (module, out, inp) in out_in {
            let key =
                |w: &str| format!("base_model.model.model.layers.{layer}.{module}.{w}.weight");
            let a = &adapter[&key("lora_A")];
            let b = &adapter[&key("lora_B")];
            assert_eq!(shape(a), [LORA_RANK, inp]);
            assert_eq!(shape(b), [out, LORA_RANK]);
            for t in [a, b] {
                assert_eq!(t.dtype(), candle_core::DType::F32);
                let zeros = t
                    .eq(0.0)
                    .unwrap()
                    .to_dtype(candle_core::DType::F32)
                    .unwrap();
                assert_eq!(zeros.sum_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
            }
        }
    }

    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(&files.adapter_config).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], LORA_RANK);
    assert_eq!(config["lora_alpha"], LORA_ALPHA);
    assert_eq!(config["lora_dropout"], 0.0);
    assert_eq!(config["bias"], "none");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["use_rslora"], false);
    assert_eq!(config["fan_in_fan_out"], false);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
    );
    assert_eq!(
        config["base_model_name_or_path"],
        "microsoft/Phi-3-mini-4k-instruct"
    );
}

#[test]
fn two_runs_are_byte_identical_and_seeds_matter() {
    let vocab = shared("ggml-vocab-phi-3.gguf");
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_tiny(&TinySpec::llama(), a.path(), Some(&vocab)).unwrap();
    write_tiny(&TinySpec::llama(), b.path(), Some(&vocab)).unwrap();
    let (sa, sb) = (snapshot(a.path()), snapshot(b.path()));
    assert_eq!(sa.len(), 10, "{:?}", sa.keys().collect::<Vec<_>>());
    assert!(sa.keys().all(|p| p.extension().is_none_or(|e| e != "part")));
    assert!(sa == sb, "two runs differ");
    assert_eq!(
        sa[Path::new("hf/tokenizer.json")],
        fs::read(shared("tokenizer.json")).unwrap()
    );

    let c = tempfile::tempdir().unwrap();
    let other = TinySpec {
        seed: 99,
        ..TinySpec::llama()
    };
    write_tiny(&other, c.path(), Some(&vocab)).unwrap();
    let sc = snapshot(c.path());
    let weights = Path::new("hf/model.safetensors");
    assert_ne!(sa[weights], sc[weights]);
    assert_eq!(
        sa[Path::new("hf/config.json")],
        sc[Path::new("hf/config.json")]
    );
}

#[test]
fn a_vocab_of_another_size_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = shared("ggml-vocab-phi-3.gguf");
    let spec = TinySpec {
        vocab: 32_100,
        ..TinySpec::phi3()
    };
    let err = write_tiny(&spec, dir.path(), Some(&vocab)).unwrap_err();
    assert!(matches!(err, TinyError::Vocab { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ggml-vocab-phi-3.gguf"), "{message}");
    assert!(
        message.contains("32064 tokens, but the spec's vocab is 32100"),
        "{message}"
    );
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn hub_is_laid_out_once_and_merges_the_adapter() {
    let root = tempfile::tempdir().unwrap();
    let vocab = shared("ggml-vocab-phi-3.gguf");
    let tokenizer = shared("tokenizer.json");
    let hub = write_hub(root.path(), &vocab, &tokenizer).unwrap();
    let rel = |p: &Path| p.strip_prefix(root.path()).unwrap().to_owned();
    assert_eq!(
        rel(&hub.base_gguf),
        Path::new("microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf")
    );
    assert_eq!(
        rel(&hub.tokenizer_json),
        Path::new("microsoft/Phi-3-mini-4k-instruct/tokenizer.json")
    );
    assert_eq!(
        rel(&hub.merged_gguf),
        Path::new("jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf")
    );
    assert_eq!(
        rel(&hub.adapter_config),
        Path::new("jdesiree/Mimir-Phi-3.5/adapter_config.json")
    );
    assert_eq!(
        rel(&hub.adapter_weights),
        Path::new("jdesiree/Mimir-Phi-3.5/adapter_model.safetensors")
    );
    assert_eq!(hub.rewritten.len(), 5);
    let before = snapshot(root.path());
    assert_eq!(before.len(), 5);
    let mtime = |p: &Path| fs::metadata(p).unwrap().modified().unwrap();
    let base_mtime = mtime(&hub.base_gguf);

    let again = write_hub(root.path(), &vocab, &tokenizer).unwrap();
    assert!(again.rewritten.is_empty(), "{:?}", again.rewritten);
    assert_eq!(snapshot(root.path()), before);
    assert_eq!(mtime(&hub.base_gguf), base_mtime);

    // a damaged file is noticed and replaced
    fs::write(&hub.adapter_config, b"{}").unwrap();
    let repaired = write_hub(root.path(), &vocab, &tokenizer).unwrap();
    assert_eq!(
        repaired.rewritten,
        std::slice::from_ref(&hub.adapter_config)
    );
    assert_eq!(snapshot(root.path()), before);

    // the Q4_K files are a real mix: 256-long ffn_down rows are Q4_K, 64-long rows Q8_0
    for path in [&hub.base_gguf, &hub.merged_gguf] {
        let gguf = read_gguf(path);
        assert_eq!(gguf.u32("general.file_type").unwrap(), 15);
        assert_eq!(dtype(&gguf, "blk.0.ffn_down.weight"), GgmlDType::Q4K);
        assert_eq!(dtype(&gguf, "blk.0.attn_qkv.weight"), GgmlDType::Q8_0);
        assert_eq!(dtype(&gguf, "blk.0.attn_norm.weight"), GgmlDType::F32);
        assert_eq!(
            gguf.string_array("tokenizer.ggml.tokens").unwrap().len(),
            32064
        );
    }

    // merged = W + (alpha / r) * B @ A, computed here from the HF weights and the adapter
    let spec = hub_spec();
    let tiny = tempfile::tempdir().unwrap();
    let files = write_tiny(&spec, tiny.path(), None).unwrap();
    assert_eq!(
        fs::read(&files.adapter_weights).unwrap(),
        fs::read(&hub.adapter_weights).unwrap(),
        "same spec, same adapter"
    );
    let dev = Device::Cpu;
    let hf = candle_core::safetensors::load(&files.hf_weights, &dev).unwrap();
    let lora = candle_core::safetensors::load(&hub.adapter_weights, &dev).unwrap();
    let prefix = "base_model.model.model.layers.1.self_attn.qkv_proj";
    let base = &hf["model.layers.1.self_attn.qkv_proj.weight"];
    let delta = lora[&format!("{prefix}.lora_B.weight")]
        .matmul(&lora[&format!("{prefix}.lora_A.weight")])
        .unwrap();
    let scale = LORA_ALPHA as f64 / LORA_RANK as f64;
    let expected = (base + (delta * scale).unwrap()).unwrap();
    let read = |path: &Path| {
        let gguf = read_gguf(path);
        let q = gguf
            .tensor(
                &mut File::open(path).unwrap(),
                "blk.1.attn_qkv.weight",
                &dev,
            )
            .unwrap();
        q.dequantize(&dev).unwrap()
    };
    let max_diff = |a: &Tensor, b: &Tensor| {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    // Q8_0 keeps values within ~1/254 of each 32-block's max (|w| < 0.2 here)
    let merged_err = max_diff(&read(&hub.merged_gguf), &expected);
    assert!(merged_err < 1e-3, "merged GGUF vs W + 2 B@A: {merged_err}");
    let base_err = max_diff(&read(&hub.base_gguf), &expected);
    assert!(
        base_err > 1e-2,
        "the base GGUF should lack the delta: {base_err}"
    );
    let base_ok = max_diff(&read(&hub.base_gguf), base);
    assert!(base_ok < 1e-3, "base GGUF vs W: {base_ok}");
    assert_eq!(spec.arch, Arch::Phi3);
}
