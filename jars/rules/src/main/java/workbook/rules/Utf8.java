package workbook.rules;

/**
 * UTF-8 as Python decodes it: strict (a surrogate, an overlong form, a code point above U+10FFFF or a
 * cut sequence makes the bytes not UTF-8), or with errors="replace": one U+FFFD for each maximal
 * subpart of an ill-formed sequence (Unicode's recommended practice, which CPython follows).
 */
final class Utf8 {
  private Utf8() {}

  /** The text, or null when strict and the bytes are not well-formed UTF-8. */
  static String decode(byte[] bytes, boolean replace) {
    StringBuilder out = new StringBuilder(bytes.length);
    int i = 0;
    while (i < bytes.length) {
      int b = bytes[i] & 0xFF;
      if (b < 0x80) {
        out.append((char) b);
        i++;
        continue;
      }
      int need;
      int lo = 0x80;
      int hi = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) {
          lo = 0xA0;
        } else if (b == 0xED) {
          hi = 0x9F;
        }
      } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) {
          lo = 0x90;
        } else if (b == 0xF4) {
          hi = 0x8F;
        }
      } else {
        if (!replace) {
          return null;
        }
        out.append('\uFFFD');
        i++;
        continue;
      }
      int code = b & (0x3F >> need);
      int j = i + 1;
      boolean whole = true;
      for (int k = 0; k < need; k++, j++) {
        int limitLo = k == 0 ? lo : 0x80;
        int limitHi = k == 0 ? hi : 0xBF;
        if (j >= bytes.length || (bytes[j] & 0xFF) < limitLo || (bytes[j] & 0xFF) > limitHi) {
          whole = false;
          break;
        }
        code = (code << 6) | (bytes[j] & 0x3F);
      }
      if (!whole) {
        if (!replace) {
          return null;
        }
        out.append('\uFFFD');
        i = j; // the lead byte and the continuation bytes that were valid: one maximal subpart
        continue;
      }
      out.appendCodePoint(code);
      i = j;
    }
    return out.toString();
  }
}
