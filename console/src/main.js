import { html, render } from "htm/preact";
import { App } from "./app.js";
import { initTheme } from "./theme.js";

initTheme();
render(html`<${App} />`, document.getElementById("app"));
