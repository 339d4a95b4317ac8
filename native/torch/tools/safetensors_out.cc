#include "safetensors_out.h"

#include <cstdint>
#include <fstream>
#include <stdexcept>

namespace cclip::tools {

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<at::Tensor> data;
  std::string header = "{";
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.to(at::kFloat).cpu().contiguous();
    const int64_t bytes = c.numel() * 4;
    std::string shape;
    for (int64_t d : c.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += (data.empty() ? "\"" : ",\"") + name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + bytes) + "]}";
    offset += bytes;
    data.push_back(c);
  }
  header += "}";
  while (header.size() % 8 != 0) header += ' ';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);  // little-endian hosts only
  out.write(header.data(), static_cast<std::streamsize>(n));
  for (const auto& c : data) out.write(static_cast<const char*>(c.data_ptr()), c.numel() * 4);
  if (!out) throw std::runtime_error("short write to " + path);
}

}  // namespace cclip::tools
