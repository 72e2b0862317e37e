// Verilog preprocessor, lexer, parser, AST: see issue 4.
import LoomCore
