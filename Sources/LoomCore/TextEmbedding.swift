// The text-embedding protocol: how a stage library asks for document vectors without importing the library that
// computes them (LoomPack's hashing and MiniLM embedders). The `loom` command passes an implementation in.

/// Turns texts into unit vectors, so a dot product is a cosine similarity.
public protocol TextEmbedder: Sendable {
    var dim: Int { get }
    /// What identifies the vectors (the embedder, its model and settings): part of a stage's configuration.
    var identity: String { get }
    /// One row of `dim` floats per text, each of length 1 (or all zeros for a text with no features).
    func embed(_ texts: [String], jobs: Int) throws -> [Float]
}

/// Makes an embedder; `fit` are texts an embedder that learns weights from data (the hashing embedder's IDF) uses.
public typealias TextEmbedderFactory = @Sendable (_ fit: [String]) throws -> any TextEmbedder
