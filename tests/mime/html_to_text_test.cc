#include "mime/internal/html_to_text.h"

#include <gtest/gtest.h>

#include "core/text.h"

namespace herald::mime_internal {
namespace {

TEST(HtmlToTextTest, WritesReadablePlainText) {
  struct Case {
    std::string name;
    std::string html;
    std::string want;
  };
  const Case cases[] = {
      {"paragraphs", "<p>One\n  two</p><p>Three</p>", "One two\n\nThree\n"},
      {"headings", "<h1>Title</h1>Intro<h2>Part</h2><p>Text</p>", "Title\n\nIntro\n\nPart\n\nText\n"},
      {"line breaks", "Dear Anna,<br>thank you.<br><br>Regards<br/>Shop", "Dear Anna,\nthank you.\n\nRegards\nShop\n"},
      {"a break at the end of a paragraph adds nothing", "<p>Regards<br></p><p>Next</p>", "Regards\n\nNext\n"},
      {"divs break lines", "<div>a</div><div>b <span>c</span></div>", "a\nb c\n"},
      {"entities", "<p>Tom &amp; Jerry &lt;3 &quot;caf&eacute;&quot; &#8364;&#x20AC; &mdash;</p>",
       "Tom & Jerry <3 \"café\" €€ —\n"},
      {"no-break spaces collapse", "<p>15&nbsp;%&nbsp;&nbsp; off</p>", "15 % off\n"},
      {"link with text", "<p>Read <a href=\"https://example.com/a?x=1&amp;y=2\">the news</a>.</p>",
       "Read the news (https://example.com/a?x=1&y=2).\n"},
      {"link that is its own text", "<a href=\"https://example.com/\">https://example.com/</a>",
       "https://example.com/\n"},
      {"mailto link", "Write to <a href=\"mailto:help@example.com\">help@example.com</a> or <a "
                      "href=\"mailto:desk@example.com\">the desk</a>",
       "Write to help@example.com or the desk (desk@example.com)\n"},
      {"image link without alt", "<a href=\"https://example.com/\"><img src=\"logo.png\"></a>",
       "https://example.com/\n"},
      {"image link with alt", "<a href=\"https://example.com/\"><img src=\"logo.png\" alt=\"Logo\"></a>",
       "Logo (https://example.com/)\n"},
      {"anchors and scripts are no addresses", "<a href=\"#top\">Top</a> <a href=\"javascript:go()\">Go</a>",
       "Top Go\n"},
      {"unordered list", "<p>Items:</p><ul><li>one</li><li>two <b>bold</b></li></ul><p>After</p>",
       "Items:\n\n- one\n- two bold\n\nAfter\n"},
      {"ordered list with start", "<ol start=\"3\"><li>three</li><li>four</li></ol>", "3. three\n4. four\n"},
      {"nested lists", "<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul>", "- a\n  - a1\n  - a2\n- b\n"},
      {"list item over lines", "<ol><li>first<br>continued</li></ol>", "1. first\n   continued\n"},
      {"table", "<table><tr><th>Item</th><th>Price</th></tr><tr><td>Jacket</td><td>129,00&nbsp;€</td></tr>"
                "<tr><td>Scarf</td><td></td></tr></table>",
       "Item | Price\nJacket | 129,00 €\nScarf\n"},
      {"layout table with spacer cells", "<table><tr><td>&nbsp;</td><td><p>Hello</p><p>World</p></td><td>&nbsp;</td>"
                                         "</tr></table>",
       "Hello\n\nWorld\n"},
      {"blockquote", "<p>She wrote:</p><blockquote><p>Line one</p><p>Line two</p></blockquote>",
       "She wrote:\n\n> Line one\n>\n> Line two\n"},
      {"preformatted", "<pre>  a  b\n    c</pre>", "  a  b\n    c\n"},
      {"rule", "<p>a</p><hr><p>b</p>", "a\n\n--------------------\n\nb\n"},
      {"dropped elements",
       "<html><head><title>T</title><style>p{color:red}</style><script>var x = 1;</script></head>"
       "<body><p>Shown</p><script>alert(1)</script><div style=\"display: none\">preview</div>"
       "<p hidden>secret</p><!-- comment --></body></html>",
       "Shown\n"},
      {"broken HTML", "<p>Unclosed <b>bold <i>and</p><p>next &copy; 2026 <unknown>x</unknown>",
       "Unclosed bold and\n\nnext © 2026 x\n"},
      {"whitespace only", "<p> </p>\n\n<div>&nbsp;</div>", ""},
      {"empty", "", ""},
      {"plain text", "just text", "just text\n"},
      {"meta charset ignored", "<meta charset=\"iso-8859-1\"><p>Grüße</p>", "Grüße\n"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(HtmlToText(c.html), c.want) << c.name << "\nhtml: " << c.html;
  }
}

TEST(HtmlToTextTest, PrivateUseCharactersSurviveInTextAndAddresses) {
  const std::string mark = "\xF3\xB0\x80\x81";  // U+F0001
  const std::string html = "<p>Hello " + mark + ",</p><p><a href=\"https://example.com/u?id=" + mark +
                           "&amp;l=1\">Unsubscribe</a> <img alt=\"" + mark + "\"></p>";
  EXPECT_EQ(HtmlToText(html), "Hello " + mark + ",\n\nUnsubscribe (https://example.com/u?id=" + mark + "&l=1) " +
                                  mark + "\n");
}

TEST(HtmlToTextTest, LargeDocument) {
  std::string html = "<table>";
  for (int i = 0; i < 20000; ++i) html += "<tr><td>Row " + std::to_string(i) + "</td><td>x</td></tr>";
  html += "</table>";
  const std::string text = HtmlToText(html);
  EXPECT_TRUE(text.starts_with("Row 0 | x\nRow 1 | x\n")) << text.substr(0, 100);
  EXPECT_TRUE(text.ends_with("Row 19999 | x\n"));
}

}  // namespace
}  // namespace herald::mime_internal
