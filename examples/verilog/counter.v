// An up/down counter with synchronous load and an active-low asynchronous reset.
`timescale 1ns / 1ps

module counter #(
  parameter WIDTH = 8
) (
  input  wire             clk,
  input  wire             rst_n,
  input  wire             en,
  input  wire             up,
  input  wire             load,
  input  wire [WIDTH-1:0] d,
  output reg  [WIDTH-1:0] q,
  output wire             zero
);
  assign zero = (q == {WIDTH{1'b0}});

  always @(posedge clk or negedge rst_n) begin
    if (!rst_n)
      q <= {WIDTH{1'b0}};
    else if (load)
      q <= d;
    else if (en)
      q <= up ? q + 1'b1 : q - 1'b1;
  end
endmodule
