#include "spec.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cclip::tools {
namespace {

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(line);
  while (std::getline(in, cur, '\t')) out.push_back(cur);
  return out;
}

TensorSpec tensor_record(const std::vector<std::string>& f, size_t line) {
  if (f.size() < 7) throw std::runtime_error("spec line " + std::to_string(line) + ": short tensor record");
  TensorSpec t;
  t.name = f[1];
  t.dtype = f[2];
  t.file = f[3];
  t.offset = std::stoll(f[4]);
  t.byte_length = std::stoll(f[5]);
  const size_t ndim = std::stoul(f[6]);
  if (f.size() != 7 + ndim) throw std::runtime_error("spec line " + std::to_string(line) + ": expected " + std::to_string(ndim) + " dims");
  for (size_t i = 0; i < ndim; i++) t.shape.push_back(std::stoll(f[7 + i]));
  t.strides.assign(ndim, 1);
  for (int64_t i = static_cast<int64_t>(ndim) - 2; i >= 0; i--) t.strides[i] = t.strides[i + 1] * t.shape[i + 1];
  return t;
}

}  // namespace

Spec read_spec(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open spec " + path);
  Spec s;
  std::string line;
  size_t no = 0;
  while (std::getline(in, line)) {
    no++;
    if (line.empty() || line[0] == '#') continue;
    const auto f = split_tabs(line);
    if (f[0] == "tensor") {
      s.tensors.push_back(tensor_record(f, no));
    } else if (f[0] == "input") {
      TensorSpec t = tensor_record(f, no);
      s.inputs[t.name] = t;
    } else if (f[0] == "arch" && f.size() >= 3) {
      const std::string& k = f[1];
      Arch& a = s.arch;
      if (k == "depths" || k == "dims") {
        if (f.size() != 6) throw std::runtime_error("spec line " + std::to_string(no) + ": " + k + " needs 4 values");
        auto& dst = k == "depths" ? a.depths : a.dims;
        for (int i = 0; i < 4; i++) dst[i] = std::stoll(f[2 + i]);
      } else if (k == "norm_eps") {
        a.norm_eps = std::stod(f[2]);
      } else if (k == "proj") {
        a.proj_mlp = f[2] == "mlp";
      } else if (k == "proj_bias") {
        a.proj_bias = f[2] == "1";
      } else {
        const int64_t v = std::stoll(f[2]);
        if (k == "embed_dim") a.embed_dim = v;
        else if (k == "image_size") a.image_size = v;
        else if (k == "width") a.width = v;
        else if (k == "heads") a.heads = v;
        else if (k == "layers") a.layers = v;
        else if (k == "context_length") a.context_length = v;
        else if (k == "vocab_size") a.vocab_size = v;
        else throw std::runtime_error("spec line " + std::to_string(no) + ": unknown arch key " + k);
      }
    } else {
      throw std::runtime_error("spec line " + std::to_string(no) + ": unknown record " + f[0]);
    }
  }
  validate_arch(s.arch);
  return s;
}

std::vector<char> read_bytes(const TensorSpec& t) {
  std::ifstream in(t.file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + t.file);
  std::vector<char> out(static_cast<size_t>(t.byte_length));
  in.seekg(t.offset);
  if (!in.read(out.data(), t.byte_length)) throw std::runtime_error("short read of " + t.name + " from " + t.file);
  return out;
}

}  // namespace cclip::tools
