#include "inputs.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace cclip::tools {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > (size_t{64} << 20)) throw std::runtime_error(path + " is over 64 MB");
  }
  return text;
}

std::vector<char> read_input_bytes(const InputTensor& t) {
  std::ifstream in(t.file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + t.file);
  std::vector<char> out(static_cast<size_t>(t.byte_length));
  in.seekg(static_cast<std::streamoff>(t.offset));
  if (!in.read(out.data(), static_cast<std::streamsize>(t.byte_length))) throw std::runtime_error("short read of " + t.name + " from " + t.file);
  return out;
}

}  // namespace cclip::tools
