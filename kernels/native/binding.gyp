{
  "variables": {
    # "openblas": link OpenBLAS and build both GEMMs (OSP_HAVE_CBLAS); "none": the portable GEMM only.
    # scripts/build-native.mjs passes --osp_blas=openblas|none (node-gyp turns it into this variable).
    "osp_blas%": "openblas"
  },
  "targets": [
    {
      "target_name": "osp_native",
      "sources": ["bindings.cc", "pool.cc", "gemm_dispatch.cc", "elementwise.cc", "layout.cc", "fused.cc", "attention.cc", "gemm.cc", "gemm_napi.cc"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["osp_blas=='openblas'", {
          "defines": ["OSP_HAVE_CBLAS=1"],
          "libraries": ["-lopenblas"]
        }]
      ]
    }
  ]
}
