// A small combinational ALU with a registered result.
`define OP_ADD 3'd0
`define OP_SUB 3'd1
`define OP_AND 3'd2
`define OP_OR  3'd3
`define OP_XOR 3'd4
`define OP_SHL 3'd5

module alu (clk, op, a, b, y, flag_zero);
  input clk;
  input [2:0] op;
  input [15:0] a, b;
  output [15:0] y;
  output flag_zero;

  reg [15:0] result;
  reg [15:0] y_q;

  always @(*) begin
    case (op)
      `OP_ADD: result = a + b;
      `OP_SUB: result = a - b;
      `OP_AND: result = a & b;
      `OP_OR:  result = a | b;
      `OP_XOR: result = a ^ b;
      `OP_SHL: result = a << b[3:0];
      default: result = 16'h0000;
    endcase
  end

  always @(posedge clk)
    y_q <= result;

  assign y = y_q;
  assign flag_zero = ~|y_q;
endmodule
