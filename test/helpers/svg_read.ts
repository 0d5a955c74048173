/** Reading osp-lab's SVG output back in tests. */

/** Text of an XML attribute or element with the five predefined entities decoded. */
export const unescapeXml = (s: string): string =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');
