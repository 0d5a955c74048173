{
  "targets": [
    {
      "target_name": "osp_native",
      "sources": ["osp_native.cc"],
      "cflags": ["-O3", "-fno-math-errno"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}
