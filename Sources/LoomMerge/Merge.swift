// Model merging (mergekit YAML): see issue 10.
import LoomCore
import LoomTensor
