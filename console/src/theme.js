// Dark mode follows the system (prefers-color-scheme) unless the person picks one; the choice is a
// preference, not a secret, so it lives in localStorage. Terminal surfaces are dark in both themes.

const KEY = "shells.theme";
const media = window.matchMedia("(prefers-color-scheme: dark)");

export function preference() {
  const saved = localStorage.getItem(KEY);
  return saved === "light" || saved === "dark" ? saved : "system";
}

function apply() {
  const pref = preference();
  const dark = pref === "dark" || (pref === "system" && media.matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

export function setPreference(pref) {
  if (pref === "system") localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, pref);
  apply();
}

export function initTheme() {
  apply();
  media.addEventListener("change", apply);
}
