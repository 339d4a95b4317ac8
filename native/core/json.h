// A small JSON reader for the load request (parsed once per load): objects, arrays, strings, numbers,
// booleans, null. Bounded: nesting depth and input size are capped; errors name the byte offset.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cclip::json {

class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_number() const { return kind_ == Kind::kNumber; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }            // array elements
  const std::map<std::string, Value>& members() const { return members_; }  // object members
  // The member named `key`, or nullptr (objects only).
  const Value* find(const std::string& key) const;

 private:
  friend class Parser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::map<std::string, Value> members_;
};

// Throws std::runtime_error("malformed JSON at byte N: ...") on bad input, duplicate keys included.
Value parse(const std::string& text);

}  // namespace cclip::json
