// Reader and writer of `torch.save` zip files (torch >= 1.6). Reading: the pickle (protocols
// 2 to 4) of the saved object with tensors rebuilt from the archive's storages, on the CPU;
// LibTorch 1.13's own unpickler lacks opcodes that plain Python containers use (APPEND),
// hence this one. Writing: LibTorch's own pickler, containers untagged.
#pragma once
#include <ATen/core/ivalue.h>

#include <string>

namespace scorch::io {

// The object saved in `path`: dicts (OrderedDict too) become GenericDict, lists GenericList,
// tuples Tuple, numbers int/double, tensors CPU tensors of the saved dtype. Objects other
// than tensors, parameters and containers are an error naming the file and the class.
c10::IValue load_torch_zip(const std::string& path);

// Writes `root` with LibTorch's own pickler (torch::pickle_save: the zip format Python's
// torch.load reads) to `path` atomically.
void save_torch_file(const std::string& path, const c10::IValue& root);

}  // namespace scorch::io
