// Two counters and an ALU wired together: named and positional ports, parameter overrides, a gate primitive.
module top (
  input  wire        clk,
  input  wire        rst_n,
  input  wire [2:0]  op,
  output wire [15:0] y,
  output wire        any_zero
);
  wire [7:0] lo, hi;
  wire lo_zero, hi_zero, alu_zero;

  counter #(.WIDTH(8)) u_lo (
    .clk(clk), .rst_n(rst_n), .en(1'b1), .up(1'b1), .load(1'b0), .d(8'd0), .q(lo), .zero(lo_zero)
  );
  counter #(.WIDTH(8)) u_hi (
    .clk(clk), .rst_n(rst_n), .en(lo_zero), .up(1'b0), .load(1'b0), .d(8'd0), .q(hi), .zero(hi_zero)
  );
  alu u_alu (clk, op, {8'd0, lo}, {8'd0, hi}, y, alu_zero);
  or g_any (any_zero, lo_zero, hi_zero, alu_zero);
endmodule
