{
  "targets": [
    {
      "target_name": "dnnl_conv",
      "sources": ["conv.cc"],
      "cflags_cc": ["-O2", "-std=c++17", "-fexceptions", "-fopenmp"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-ldnnl", "-fopenmp"]
    }
  ]
}
