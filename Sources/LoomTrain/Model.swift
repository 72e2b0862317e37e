// Llama-architecture model, its backward pass, objectives and training: see issue 8.
import LoomCore
import LoomTensor
