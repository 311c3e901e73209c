"""doc-search: semantic search over a local document set, next to the documents.

Inputs: ``$MYCEL_IN/docs`` (a directory of .txt/.md files) and ``$MYCEL_IN/queries``
(a text file, one query per line). Documents are split into paragraphs, embedded with
all-MiniLM-L6-v2 run by onnxruntime (the model comes from the node's agent
environment, see minilm_onnx.py), and each query gets its 3 best paragraphs by cosine
similarity in ``$MYCEL_OUT/results.json``. The documents never leave the node; only
the matches do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from minilm_onnx import build, model_dir
from tokenizers import Tokenizer

TOP_K = 3
BATCH = 32
MAX_TOKENS = 256


def paragraphs(root: Path) -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".md") and p.is_file()):
        text = path.read_text(errors="replace")
        for index, block in enumerate(b.strip() for b in text.split("\n\n")):
            if block:
                found.append((str(path.relative_to(root)), index, block))
    return found


def main() -> None:
    inputs, out = Path(os.environ["MYCEL_IN"]), Path(os.environ["MYCEL_OUT"])
    queries = [q.strip() for q in (inputs / "queries").read_text().splitlines() if q.strip()]
    chunks = paragraphs(inputs / "docs")
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(MAX_TOKENS)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic, and one core is what the sandbox grants
    options.log_severity_level = 3
    session = ort.InferenceSession(build().SerializeToString(), options, providers=["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), BATCH):
            encoded = tokenizer.encode_batch(texts[start : start + BATCH])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            parts.append(session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(parts) if parts else np.zeros((0, 384), np.float32)

    corpus = embed([text for _, _, text in chunks])
    results = []
    for query, vector in zip(queries, embed(queries), strict=True):
        scores = corpus @ vector
        best = np.argsort(-scores)[:TOP_K]
        matches = [
            {
                "document": chunks[i][0],
                "paragraph": chunks[i][1],
                "score": round(float(scores[i]), 4),
                "text": chunks[i][2][:300],
            }
            for i in best
        ]
        results.append({"query": query, "matches": matches})
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({"documents": len({c[0] for c in chunks}), "paragraphs": len(chunks), "queries": len(queries)}))


if __name__ == "__main__":
    main()
