// Byte-level BPE tokenizer (Hugging Face tokenizer.json): see issue 9.
import LoomCore
