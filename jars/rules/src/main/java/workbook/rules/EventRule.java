package workbook.rules;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The contract's rule for a raw Kafka record (lib/contract/events.py, parse_record), for the JVM: the
 * same reason for the same bytes, detail included, so the Flink job can classify without a Python worker.
 *
 * <p>Python's rule is the reference. It decodes UTF-8 strictly, refuses text nested more than 64 deep,
 * then parses with CPython's C scanner and hooks that refuse NaN and Infinity, numbers of more than 100
 * characters and keys named twice in one object (checked when the object closes). The first problem in
 * document order wins, as in that scanner; this class follows it step by step, and a differential test
 * compares the two over a corpus and generated records. No dependency: Flink's functions wrap it.
 */
public final class EventRule {
  public static final int MAX_DEPTH = 64;
  public static final int MAX_NUMBER_CHARS = 100;

  private EventRule() {}

  /** A record's reason to be a dead letter; the message is the reason. No stack trace: it is control flow. */
  static final class Reason extends RuntimeException {
    Reason(String reason) {
      super(reason, null, false, false);
    }
  }

  private static final String NOT_JSON = "not JSON: JSONDecodeError";
  private static final Object NULL = new Object();
  private static final Object INT = new Object();
  private static final Object FLOAT = new Object();
  private static final Object STRING = new Object();
  private static final Object LIST = new Object();

  /** Why the record is malformed, or null for an event with a usable event_id. */
  public static String malformedReason(byte[] value) {
    if (value == null) {
      return "empty record (null value)";
    }
    String text = Utf8.decode(value, false);
    if (text == null) {
      return "not UTF-8 text";
    }
    if (count(text) > MAX_DEPTH && depth(text) > MAX_DEPTH) {
      return "too deep: more than " + MAX_DEPTH + " levels of nesting";
    }
    Object doc;
    try {
      doc = new Scanner(text).document();
    } catch (Reason reason) {
      return reason.getMessage();
    }
    if (!(doc instanceof Map)) {
      return "not a JSON object: " + typeName(doc);
    }
    Object id = ((Map<?, ?>) doc).get("event_id");
    return id instanceof String && usableId((String) id) ? null : "missing or unusable event_id";
  }

  /** The record as text a reader can always show: UTF-8 with U+FFFD for each maximal ill-formed part. */
  public static String asText(byte[] value) {
    return value == null ? null : Utf8.decode(value, true);
  }

  private static int count(String text) {
    int n = 0;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '[' || c == '{') {
        n++;
      }
    }
    return n;
  }

  /** Python's _depth: brackets outside strings, escapes honoured, closers may drive it below zero. */
  static int depth(String text) {
    int depth = 0;
    int deepest = 0;
    boolean inString = false;
    boolean escaped = false;
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (inString) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          inString = false;
        }
      } else if (c == '"') {
        inString = true;
      } else if (c == '[' || c == '{') {
        depth++;
        deepest = Math.max(deepest, depth);
      } else if (c == ']' || c == '}') {
        depth--;
      }
    }
    return deepest;
  }

  private static String typeName(Object doc) {
    if (doc == NULL) {
      return "NoneType";
    }
    if (doc instanceof Boolean) {
      return "bool";
    }
    if (doc == INT) {
      return "int";
    }
    if (doc == FLOAT) {
      return "float";
    }
    if (doc instanceof String) { // nested strings are only STRING; the top level keeps its text
      return "str";
    }
    return "list";
  }

  /** Python's str.isspace(), which str.strip() strips (CPython 3.11's set). */
  static boolean isPythonSpace(int cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0
        || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
        || cp == 0x205F || cp == 0x3000;
  }

  /** A non-blank string with no lone surrogate (which UTF-8 cannot carry). */
  static boolean usableId(String id) {
    boolean blank = true;
    for (int i = 0; i < id.length(); i++) {
      char c = id.charAt(i);
      if (Character.isHighSurrogate(c)) {
        if (i + 1 >= id.length() || !Character.isLowSurrogate(id.charAt(i + 1))) {
          return false;
        }
        i++;
        blank = false;
      } else if (Character.isLowSurrogate(c)) {
        return false;
      } else if (!isPythonSpace(c)) {
        blank = false;
      }
    }
    return !blank;
  }

  /** Python's ascii() of a str: its repr, every code point above 0x7e escaped. */
  static String pythonAscii(String s) {
    boolean single = s.indexOf('\'') >= 0;
    boolean dbl = s.indexOf('"') >= 0;
    char quote = single && !dbl ? '"' : '\'';
    StringBuilder out = new StringBuilder().append(quote);
    for (int i = 0; i < s.length(); ) {
      int cp = s.codePointAt(i);
      i += Character.charCount(cp);
      if (cp == quote || cp == '\\') {
        out.append('\\').append((char) cp);
      } else if (cp == '\t') {
        out.append("\\t");
      } else if (cp == '\n') {
        out.append("\\n");
      } else if (cp == '\r') {
        out.append("\\r");
      } else if (cp < 0x20 || cp == 0x7F) {
        out.append(String.format("\\x%02x", cp));
      } else if (cp < 0x7F) {
        out.append((char) cp);
      } else if (cp < 0x100) {
        out.append(String.format("\\x%02x", cp));
      } else if (cp < 0x10000) {
        out.append(String.format("\\u%04x", cp));
      } else {
        out.append(String.format("\\U%08x", cp));
      }
    }
    return out.append(quote).toString();
  }

  /** CPython's C JSON scanner (Modules/_json.c, strict) with the contract's hooks, over UTF-16 text. */
  static final class Scanner {
    private final String s;
    private final int n;
    private int i;

    Scanner(String s) {
      this.s = s;
      this.n = s.length();
    }

    Object document() {
      i = whitespace(0);
      Object doc = value(0);
      if (whitespace(i) != n) {
        throw new Reason(NOT_JSON); // "Extra data", checked only once the whole value is parsed
      }
      return doc;
    }

    private int whitespace(int j) {
      while (j < n) {
        char c = s.charAt(j);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
          break;
        }
        j++;
      }
      return j;
    }

    private static Reason constant(String name) {
      return new Reason("not JSON: " + name + " is not a JSON value");
    }

    /** One value from i. Strings keep their text down to the top-level object's members (event_id);
     * deeper values only say their kind. */
    private Object value(int level) {
      if (i >= n) {
        throw new Reason(NOT_JSON);
      }
      switch (s.charAt(i)) {
        case '"':
          i++;
          String text = string();
          return level <= 1 ? text : STRING;
        case '{':
          i++;
          return object(level);
        case '[':
          i++;
          array(level);
          return LIST;
        case 'n':
          if (s.startsWith("null", i)) {
            i += 4;
            return NULL;
          }
          break;
        case 't':
          if (s.startsWith("true", i)) {
            i += 4;
            return Boolean.TRUE;
          }
          break;
        case 'f':
          if (s.startsWith("false", i)) {
            i += 5;
            return Boolean.FALSE;
          }
          break;
        case 'N':
          if (s.startsWith("NaN", i)) {
            throw constant("NaN");
          }
          break;
        case 'I':
          if (s.startsWith("Infinity", i)) {
            throw constant("Infinity");
          }
          break;
        case '-':
          if (s.startsWith("-Infinity", i)) {
            throw constant("-Infinity");
          }
          break;
        default:
          break;
      }
      return number();
    }

    private static boolean digit(char c) {
      return c >= '0' && c <= '9';
    }

    /** _match_number_unicode: ASCII digits; a '.' or an exponent without digits is left unread. */
    private Object number() {
      int start = i;
      int j = i;
      int end = n - 1;
      if (j < n && s.charAt(j) == '-') {
        j++;
        if (j > end) {
          throw new Reason(NOT_JSON);
        }
      }
      if (j < n && s.charAt(j) >= '1' && s.charAt(j) <= '9') {
        j++;
        while (j <= end && digit(s.charAt(j))) {
          j++;
        }
      } else if (j < n && s.charAt(j) == '0') {
        j++;
      } else {
        throw new Reason(NOT_JSON);
      }
      boolean isFloat = false;
      if (j < end && s.charAt(j) == '.' && digit(s.charAt(j + 1))) {
        isFloat = true;
        j += 2;
        while (j <= end && digit(s.charAt(j))) {
          j++;
        }
      }
      if (j < end && (s.charAt(j) == 'e' || s.charAt(j) == 'E')) {
        int eStart = j;
        j++;
        if (j < end && (s.charAt(j) == '-' || s.charAt(j) == '+')) {
          j++;
        }
        while (j <= end && digit(s.charAt(j))) {
          j++;
        }
        if (digit(s.charAt(j - 1))) {
          isFloat = true;
        } else {
          j = eStart;
        }
      }
      if (j - start > MAX_NUMBER_CHARS) {
        throw new Reason("number too long: " + (j - start) + " characters, at most " + MAX_NUMBER_CHARS);
      }
      i = j;
      return isFloat ? FLOAT : INT;
    }

    private int hex(int at) {
      char c = s.charAt(at);
      if (c >= '0' && c <= '9') {
        return c - '0';
      }
      if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
      }
      if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
      }
      throw new Reason(NOT_JSON);
    }

    private int hex4(int at) {
      return (hex(at) << 12) | (hex(at + 1) << 8) | (hex(at + 2) << 4) | hex(at + 3);
    }

    /** scanstring_unicode, strict: from just after the opening quote to just after the closing one. */
    private String string() {
      StringBuilder out = new StringBuilder();
      int end = i;
      while (true) {
        int next = end;
        char c = 0;
        for (; next < n; next++) {
          c = s.charAt(next);
          if (c == '"' || c == '\\') {
            break;
          } else if (c <= 0x1f) {
            throw new Reason(NOT_JSON); // a control character inside a string
          }
        }
        if (next >= n) {
          throw new Reason(NOT_JSON); // unterminated
        }
        out.append(s, end, next);
        next++;
        if (c == '"') {
          end = next;
          break;
        }
        if (next == n) {
          throw new Reason(NOT_JSON);
        }
        c = s.charAt(next);
        if (c != 'u') {
          end = next + 1;
          switch (c) {
            case '"': out.append('"'); break;
            case '\\': out.append('\\'); break;
            case '/': out.append('/'); break;
            case 'b': out.append('\b'); break;
            case 'f': out.append('\f'); break;
            case 'n': out.append('\n'); break;
            case 'r': out.append('\r'); break;
            case 't': out.append('\t'); break;
            default: throw new Reason(NOT_JSON);
          }
        } else {
          next++;
          end = next + 4;
          if (end >= n) {
            throw new Reason(NOT_JSON);
          }
          int code = hex4(next);
          next = end;
          if (Character.isHighSurrogate((char) code) && end + 6 < n && s.charAt(next) == '\\'
              && s.charAt(next + 1) == 'u') {
            int low = hex4(next + 2); // four hex digits, or the string is not JSON
            end += 6;
            if (Character.isLowSurrogate((char) low)) {
              out.append((char) code).append((char) low);
              continue;
            }
            end -= 6;
          }
          out.append((char) code);
        }
      }
      i = end;
      return out.toString();
    }

    /** _parse_object_unicode with the duplicate-key hook, run when the object closes. */
    private Object object(int level) {
      Map<String, Object> doc = new HashMap<>();
      List<String> keys = new ArrayList<>();
      i = whitespace(i);
      if (i >= n || s.charAt(i) != '}') {
        while (true) {
          if (i >= n || s.charAt(i) != '"') {
            throw new Reason(NOT_JSON);
          }
          i++;
          String key = string();
          i = whitespace(i);
          if (i >= n || s.charAt(i) != ':') {
            throw new Reason(NOT_JSON);
          }
          i = whitespace(i + 1);
          Object value = value(level + 1);
          keys.add(key);
          doc.put(key, value);
          i = whitespace(i);
          if (i < n && s.charAt(i) == '}') {
            break;
          }
          if (i >= n || s.charAt(i) != ',') {
            throw new Reason(NOT_JSON);
          }
          i = whitespace(i + 1);
        }
      }
      i++;
      if (doc.size() != keys.size()) {
        Map<String, Integer> seen = new LinkedHashMap<>();
        for (String key : keys) {
          seen.merge(key, 1, Integer::sum);
        }
        for (Map.Entry<String, Integer> entry : seen.entrySet()) {
          if (entry.getValue() > 1) {
            String shown = pythonAscii(entry.getKey());
            throw new Reason("duplicate key: " + shown.substring(0, Math.min(60, shown.length()))
                + " appears more than once");
          }
        }
      }
      return doc;
    }

    /** _parse_array_unicode: "[1,]" and "[,1]" are not JSON. */
    private void array(int level) {
      i = whitespace(i);
      if (i >= n || s.charAt(i) != ']') {
        while (true) {
          value(level + 1);
          i = whitespace(i);
          if (i < n && s.charAt(i) == ']') {
            break;
          }
          if (i >= n || s.charAt(i) != ',') {
            throw new Reason(NOT_JSON);
          }
          i = whitespace(i + 1);
        }
      }
      if (i >= n || s.charAt(i) != ']') {
        throw new Reason(NOT_JSON);
      }
      i++;
    }
  }
}
