#include "merge/template.h"

#include <gtest/gtest.h>

namespace herald {
namespace {

class TemplateTest : public ::testing::Test {
 protected:
  FieldSet fields_{{"email", "firstname", "city"}};

  std::string Render(std::string_view text, std::vector<std::string_view> columns,
                     Escaping escaping = Escaping::kNone) {
    Result<Template> compiled = Template::Compile(text, fields_, "test");
    EXPECT_TRUE(compiled.ok()) << compiled.status().ToString();
    if (!compiled.ok()) return {};
    std::vector<std::string_view> values = columns;
    values.resize(fields_.size());
    values[fields_.task_title_index()] = "Title";
    values[fields_.subject_index()] = "Subj";
    values[fields_.recipient_index()] = "a@example.com";
    std::string out;
    compiled->Render(values, escaping, out);
    return out;
  }
};

TEST_F(TemplateTest, RendersPlaceholdersAndBuiltins) {
  struct Case {
    const char* text;
    std::vector<std::string_view> columns;
    const char* want;
  };
  const Case cases[] = {
      {"Hello {%firstname%}!", {"a@x", "Anna", "Graz"}, "Hello Anna!"},
      {"{%FirstName%} in {% city %}", {"a@x", "Jo", "Wien"}, "Jo in Wien"},
      {"Dear {%firstname|Customer%},", {"a@x", "", ""}, "Dear Customer,"},
      {"Dear {%firstname|Customer%},", {"a@x", "Bo", ""}, "Dear Bo,"},
      {"{%task_title%}/{%subject%}/{%recipient%}", {"", "", ""}, "Title/Subj/a@example.com"},
      {"no placeholders", {"", "", ""}, "no placeholders"},
      {"{%firstname%}{%firstname%}", {"", "ab", ""}, "abab"},
      {"100% sure {x}", {"", "", ""}, "100% sure {x}"},
      {"{%firstname|a|b%}", {"", "", ""}, "a|b"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Render(c.text, c.columns), c.want) << c.text;
  }
}

TEST_F(TemplateTest, EscapesValuesAndDefaultsInHtml) {
  EXPECT_EQ(Render("<p>{%firstname%}</p>", {"", "<b>Tom & \"Jerry\"</b>", ""}, Escaping::kHtml),
            "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</p>");
  EXPECT_EQ(Render("{%firstname|O'Neil <3%}", {"", "", ""}, Escaping::kHtml), "O&#39;Neil &lt;3");
  EXPECT_EQ(Render("<p>{%firstname%}</p>", {"", "<b>", ""}, Escaping::kNone), "<p><b></p>");
}

TEST_F(TemplateTest, UnknownPlaceholderNamesPositionAndAvailableFields) {
  Result<Template> got = Template::Compile("Hi\nDear {%fristname%}", fields_, "body.txt");
  ASSERT_FALSE(got.ok());
  const std::string& message = got.status().message();
  EXPECT_NE(message.find("body.txt:2:6"), std::string::npos) << "message: " << message;
  EXPECT_NE(message.find("fristname"), std::string::npos) << message;
  EXPECT_NE(message.find("firstname"), std::string::npos) << message;
}

TEST_F(TemplateTest, RejectsMalformedPlaceholders) {
  for (const char* text : {"Hello {%firstname", "{%%}", "{% |x%}", "{%first\nname%}"}) {
    EXPECT_FALSE(Template::Compile(text, fields_, "t").ok()) << text;
  }
}

TEST_F(TemplateTest, ReportsConstantAndUsedFields) {
  Result<Template> constant = Template::Compile("plain", fields_, "t");
  ASSERT_TRUE(constant.ok());
  EXPECT_TRUE(constant->IsConstant());
  Result<Template> personal = Template::Compile("{%city%}", fields_, "t");
  ASSERT_TRUE(personal.ok());
  EXPECT_FALSE(personal->IsConstant());
  EXPECT_TRUE(personal->UsesField(2));
  EXPECT_FALSE(personal->UsesField(1));
}

TEST(FieldSetTest, BuiltinsShadowColumns) {
  FieldSet fields({"Email", "Subject"});
  EXPECT_EQ(fields.Find("email"), 0u);
  EXPECT_EQ(fields.Find("SUBJECT"), fields.subject_index());
  EXPECT_EQ(fields.shadowed_columns(), std::vector<std::string>{"Subject"});
  EXPECT_FALSE(fields.Find("missing").has_value());
}

}  // namespace
}  // namespace herald
