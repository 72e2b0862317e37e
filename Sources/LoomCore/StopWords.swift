// Words too common to be a text's content: left out of reading-comprehension key terms and cloze targets.
// Tuned for scientific abstracts (also "results", "patients", "significant", ...).

public enum StopWords {
    public static let english: Set<String> = [
        "about", "above", "after", "again", "against", "also", "although", "among", "another", "because", "been",
        "before", "being", "below", "between", "both", "could", "does", "doing", "during", "each", "either", "else",
        "even", "every", "first", "from", "further", "have", "having", "here", "however", "into", "itself", "just",
        "last", "less", "like", "made", "make", "many", "might", "more", "most", "much", "must", "never", "only",
        "other", "otherwise", "over", "same", "second", "should", "since", "some", "such", "than", "that", "their",
        "them", "then", "there", "therefore", "these", "they", "thus", "this", "those", "three", "through", "under",
        "until", "upon", "very", "were", "what", "when", "where", "whether", "which", "while", "with", "within",
        "without", "would", "your", "results", "result", "study", "studies", "using", "used", "shown", "showed",
        "found", "observed", "patients", "data", "group", "groups", "effect", "effects", "found", "present",
        "method", "methods", "conclusion", "conclusions", "background", "objective", "significant", "significantly",
        "increased", "decreased", "compared", "level", "levels", "high", "higher", "lower", "different", "total",
    ]
}
