// GOV.UK Frontend's progressive enhancements. Every page works without this script.
import { initAll } from './govuk/govuk-frontend.min.js'

document.body.classList.add('govuk-frontend-supported')
initAll()

// The timeout warning (GOV.UK's pattern; base.html): opened before the session's idle limit,
// with "Stay signed in" and a countdown; at the end the page goes to the sign-in, which brings
// the lead back here. Before it opens and before it signs out it asks the server how long is
// really left (GET /session, which does not itself keep the session alive), because another
// tab may have used the session meanwhile.
const dialog = document.getElementById('timeout-warning')
if (dialog && typeof dialog.showModal === 'function') {
  const countdown = dialog.querySelector('.app-timeout-warning__countdown')
  const keep = dialog.querySelector('.app-timeout-warning__keep')
  // Two minutes' warning, or half the session when it is shorter than four.
  const warning = Math.min(120, Math.floor(Number(dialog.dataset.secondsLeft) / 2))
  let timer = null
  let endsAt = 0

  const words = (seconds) => {
    if (seconds >= 60) {
      const minutes = Math.ceil(seconds / 60)
      return minutes === 1 ? '1 minute' : `${minutes} minutes`
    }
    return seconds === 1 ? '1 second' : `${seconds} seconds`
  }
  const signIn = () => {
    const here = window.location.pathname + window.location.search
    window.location.assign(`/sign-in?expired=1&next=${encodeURIComponent(here)}`)
  }
  const left = async () => {
    const answer = await fetch('/session', { credentials: 'same-origin', cache: 'no-store' })
    return answer.ok ? (await answer.json()).seconds_left : 0
  }
  const arm = (secondsLeft) => {
    clearTimeout(timer)
    endsAt = Date.now() + secondsLeft * 1000
    timer = setTimeout(check, Math.max(0, secondsLeft - warning) * 1000)
  }
  const tick = () => {
    const seconds = Math.max(0, Math.round((endsAt - Date.now()) / 1000))
    countdown.textContent = words(seconds)
    if (seconds > 0) {
      timer = setTimeout(tick, 1000)
    } else {
      check()
    }
  }
  const check = async () => {
    let secondsLeft = 0
    try {
      secondsLeft = await left()
    } catch {
      secondsLeft = Math.max(0, Math.round((endsAt - Date.now()) / 1000))  // offline: keep counting
    }
    if (secondsLeft <= 0) {
      signIn()
    } else if (secondsLeft > warning) {  // used in another tab: not yet
      if (dialog.open) dialog.close()
      arm(secondsLeft)
    } else {
      endsAt = Date.now() + secondsLeft * 1000
      if (!dialog.open) dialog.showModal()
      tick()
    }
  }
  const stay = async (event) => {
    event.preventDefault()
    clearTimeout(timer)
    let secondsLeft = 0
    try {
      const answer = await fetch('/session', {
        method: 'POST', body: new FormData(keep), credentials: 'same-origin', cache: 'no-store', redirect: 'manual'
      })
      secondsLeft = answer.ok ? (await answer.json()).seconds_left : 0
    } catch {
      secondsLeft = 0  // offline: check() keeps counting down
    }
    if (secondsLeft > warning) {
      dialog.close()
      arm(secondsLeft)
    } else {
      check()  // not kept (offline, signed out elsewhere) or the session's absolute limit
    }
  }
  keep.addEventListener('submit', stay)
  dialog.addEventListener('cancel', stay)  // Escape means "Stay signed in", as in GOV.UK's pattern
  arm(Number(dialog.dataset.secondsLeft))
}
