// A synchronous FIFO with a memory array, a generate loop for its parity bits, and a function.
module fifo #(
  parameter DATA_W = 8,
  parameter DEPTH_LOG2 = 4
) (
  input                   clk,
  input                   rst,
  input                   push,
  input                   pop,
  input      [DATA_W-1:0] din,
  output     [DATA_W-1:0] dout,
  output     [DATA_W-1:0] parity,
  output                  full,
  output                  empty
);
  localparam DEPTH = 1 << DEPTH_LOG2;

  reg [DATA_W-1:0] mem [0:DEPTH-1];
  reg [DEPTH_LOG2:0] wr_ptr, rd_ptr;
  wire [DEPTH_LOG2:0] count;

  function [DEPTH_LOG2:0] distance;
    input [DEPTH_LOG2:0] w, r;
    begin
      distance = w - r;
    end
  endfunction

  assign count = distance(wr_ptr, rd_ptr);
  assign full = count == DEPTH;
  assign empty = count == 0;
  assign dout = mem[rd_ptr[DEPTH_LOG2-1:0]];

  genvar i;
  generate
    for (i = 0; i < DATA_W; i = i + 1) begin : g_parity
      assign parity[i] = ^mem[i % DEPTH];
    end
  endgenerate

  always @(posedge clk) begin
    if (rst) begin
      wr_ptr <= 0;
      rd_ptr <= 0;
    end else begin
      if (push && !full) begin
        mem[wr_ptr[DEPTH_LOG2-1:0]] <= din;
        wr_ptr <= wr_ptr + 1;
      end
      if (pop && !empty)
        rd_ptr <= rd_ptr + 1;
    end
  end
endmodule
